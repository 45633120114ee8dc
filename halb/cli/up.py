"""CLI commands: up."""

from __future__ import annotations

