"""CLI commands: lab."""

from __future__ import annotations

