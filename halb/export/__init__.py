"""Exports of a cluster's rendered files for other deploy engines (Ansible)."""

from __future__ import annotations

from halb.export.ansible import Export, ExportFile, build, write

__all__ = ["Export", "ExportFile", "build", "write"]
