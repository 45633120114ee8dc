"""CLI commands: deploy."""

from __future__ import annotations

