"""What a deploy did, per host and per VIP, for people and for `--json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from halb.deploy.plan import Plan

# --------------------------------------------------------------------------- the deploy


class HostState(StrEnum):
    PENDING = "pending"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"


@dataclass
class HostResult:
    host: str
    status: HostState = HostState.PENDING
    error: str | None = None
    rollback_error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    backup: str | None = None
    haproxy_pid: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (HostState.UNCHANGED, HostState.CHANGED)


@dataclass
class DeployReport:
    plan: Plan
    hosts: list[HostResult]
    vips: dict[str, list[str]]
    vip_error: str | None
    dry_run: bool
    seconds: float  # up to the end of the VIP check
    # seconds per stage: connect (+ locks + facts), plan, apply, vips, and close (the locks
    # released and the connections closed, filled in after `seconds` was taken)
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts) and self.vip_error is None

    @property
    def changed(self) -> bool:
        return any(h.status is HostState.CHANGED for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "changed": self.changed if not self.dry_run else self.plan.changed,
            "seconds": self.seconds,
            "stages": self.stages,
            "plan": self.plan.as_dict(),
            "hosts": {
                h.host: {
                    "status": h.status.value,
                    "error": h.error,
                    "rollback_error": h.rollback_error,
                    "files": h.files,
                    "services": h.services,
                    "backup": h.backup,
                    "haproxy_pid": h.haproxy_pid,
                    "seconds": h.seconds,
                }
                for h in self.hosts
            },
            "vips": self.vips,
            "vip_error": self.vip_error,
        }
