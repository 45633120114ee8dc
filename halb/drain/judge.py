"""Pure decisions for drain and undrain, from a status report and the cluster's priorities."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from halb.errors import InputError
from halb.status_report import HostStatus, StatusReport

Action = Literal["drain", "undrain"]


def check_target(host: str, lb_hosts: Sequence[str], inventory_hosts: Sequence[str]) -> None:
    """HOST must be one of the LB hosts; say which ones there are, and the nearest name."""
    if host in lb_hosts:
        return
    listed = ", ".join(lb_hosts)
    if host in inventory_hosts:
        raise InputError(f"host {host}: not an LB host (LB hosts: {listed})")
    near = difflib.get_close_matches(host, list(lb_hosts), n=1)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise InputError(f"host {host}: not in the inventory{hint} (LB hosts: {listed})")


def check_preempt(action: Action, nopreempt: bool) -> None:
    """Drain moves a VIP by priority, which a peer only acts on when it may preempt."""
    if action == "drain" and nopreempt:
        raise InputError(
            "halb.yaml: vrrp.nopreempt: with nopreempt no peer takes a VIP over from a "
            "lower-priority holder, so drain cannot move it; remove vrrp.nopreempt "
            "(vrrp.preempt_delay keeps failback calm)"
        )


def healthy(h: HostStatus) -> bool:
    """Able to take a VIP over: reachable, both services up, not drained."""
    return h.reachable and h.haproxy_up and h.keepalived_up and not h.drained


def refusal(report: StatusReport, host: str) -> str | None:
    """Why draining HOST would leave no holder (None: a healthy peer remains)."""
    peers = [h for h in report.hosts if h.host != host]
    if any(healthy(h) for h in peers):
        return None
    if not peers:
        return f"{host} is the only LB host: draining it leaves every VIP without a holder"
    why = "; ".join(f"{h.host} {peer_problem(h)}" for h in peers)
    return f"no healthy peer would take the VIPs from {host} ({why})"


def peer_problem(h: HostStatus) -> str:
    if not h.reachable:
        return "is unreachable"
    if h.drained:
        return "is drained"
    if not h.haproxy_up:
        return "has no HAProxy"
    return "has no keepalived"


def expected_holders(
    report: StatusReport, priorities: Mapping[str, Mapping[str, int]]
) -> dict[str, str | None]:
    """With preemption, each VIP ends on the highest-priority healthy host (None: no one)."""
    ok = {h.host for h in report.hosts if healthy(h)}
    out: dict[str, str | None] = {}
    for vip, prios in priorities.items():
        ranked = sorted((p, name) for name, p in prios.items() if name in ok)
        out[vip] = ranked[-1][1] if ranked else None
    return out


@dataclass(frozen=True)
class Wait:
    done: bool
    waiting_for: str  # what is still missing, for the timeout message ("" when done)


def drain_progress(report: StatusReport, host: str) -> Wait:
    """Done when HOST is flagged, holds no VIP and another host holds each one alone."""
    me = next(h for h in report.hosts if h.host == host)
    if not me.drained:
        return Wait(False, f"{host} to show the drain flag")
    for v in report.vips:
        if host in v.holders:
            return Wait(False, f"a peer to take VIP {v.name} ({v.address}) over from {host}")
        if len(v.holders) != 1:
            return Wait(False, f"exactly one holder of VIP {v.name} (now {_who(v.holders)})")
    return Wait(True, "")


def undrain_progress(
    report: StatusReport,
    host: str,
    priorities: Mapping[str, Mapping[str, int]],
    preempt: bool,
) -> Wait:
    """Done when HOST's checks pass again, each VIP has one holder, and (with preemption)
    each VIP sits on the highest-priority healthy host, HOST included."""
    me = next(h for h in report.hosts if h.host == host)
    if me.drained:
        return Wait(False, f"the drain flag to go from {host}")
    bad = {k: s for k, s in me.vrrp.items() if s not in ("BACKUP", "MASTER")}
    if bad:
        shown = ", ".join(f"{k}={s or '?'}" for k, s in sorted(bad.items()))
        return Wait(False, f"{host} to be BACKUP or MASTER again (now {shown})")
    for v in report.vips:
        if len(v.holders) != 1:
            return Wait(False, f"exactly one holder of VIP {v.name} (now {_who(v.holders)})")
    if preempt:
        want = expected_holders(report, priorities)
        for v in report.vips:
            target = want.get(v.name)
            if target is not None and v.holders[0] != target:
                return Wait(False, f"{target} to take VIP {v.name} back (held by {v.holders[0]})")
    return Wait(True, "")


def _who(holders: Sequence[str]) -> str:
    return " and ".join(holders) or "none"
