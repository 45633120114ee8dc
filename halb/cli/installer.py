"""CLI commands: installer."""

from __future__ import annotations

