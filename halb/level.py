"""How a finding of a check counts, shared by preflight and probe."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but something deserves a look
    PENDING = "pending"  # probe: apiserver not installed yet, every backend refuses
    FAIL = "fail"
