"""Preflight results, the exit status they add up to, and the JSON document."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from halb.errors import ExitStatus
from halb.level import Level

JSON_VERSION = 1


@dataclass(frozen=True)
class PreflightResult:
    check: str  # ssh, sudo, interface, vip-arp, vrrp, ports, firewall
    host: str  # the host the finding is about (may be a non-LB host that holds the VIP)
    level: Level
    message: str
    # A failure caused by the input or the environment (foreign VRRP on our router id, VIP
    # already held, missing interface, port taken): exit 2 rather than 1.
    bad_input: bool = False


def exit_status(results: Iterable[PreflightResult]) -> ExitStatus:
    """2 if a failure is bad input/environment, else 1 if anything failed, else 0."""
    fails = [r for r in results if r.level is Level.FAIL]
    if any(r.bad_input for r in fails):
        return ExitStatus.BAD_INPUT
    return ExitStatus.CHECK_FAILED if fails else ExitStatus.OK


def document(results: Sequence[PreflightResult]) -> dict[str, Any]:
    status = exit_status(results)
    return {
        "version": JSON_VERSION,
        "ok": status == ExitStatus.OK,
        "exit_status": int(status),
        "checks": [
            {
                "check": r.check,
                "host": r.host,
                "level": str(r.level),
                "message": r.message,
                "bad_input": r.bad_input,
            }
            for r in results
        ],
    }


def dedupe(results: Sequence[PreflightResult]) -> list[PreflightResult]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for r in results:
        key = (r.check, r.host, r.message)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out
