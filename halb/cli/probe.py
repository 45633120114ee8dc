"""CLI commands: probe."""

from __future__ import annotations

