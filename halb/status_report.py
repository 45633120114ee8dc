"""The status report (pure): what the LB hosts are doing, judged from the facts
`halb.gather` read on each one: VRRP state, VIP holders, HAProxy and backend health."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from halb.facts.ipaddr import holders
from halb.facts.journal import UnitJournal
from halb.facts.lbstate import LbFacts
from halb.intruders import Intruder, VipSeen, find
from halb.paths import REDIRECT_SCRIPT
from halb.spec import Cluster

# -------------------------------------------------------------------------- assessment


@dataclass(frozen=True)
class VipRef:
    name: str
    address: str
    instance: str
    family: int = 4
    label: str = ""  # "internal6" for an IPv6 VIP; the name when empty
    interface: str = ""

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class FrontendRef:
    name: str
    vip_name: str
    backends: tuple[str, ...]  # server names
    redirected: bool = False  # its public port goes to HAProxy through halb's nftables table


@dataclass(frozen=True)
class BackendStatus:
    frontend: str
    server: str
    address: str
    status: str
    check: str


@dataclass(frozen=True)
class HostStatus:
    host: str
    reachable: bool
    error: str | None
    vrrp: Mapping[str, str | None]
    vips: tuple[str, ...]  # VIPs held: their names, "internal6" for an IPv6 one
    haproxy_up: bool
    haproxy_pid: int | None
    keepalived_up: bool
    backends: tuple[BackendStatus, ...]
    drained: bool = False
    # halb's nftables redirect (co-located LB hosts): "active VIP, ...", "inactive" (HAProxy
    # not healthy here: the VIPs fall through to the host's own backends), "absent"; None
    # when no frontend is redirected
    redirect: str | None = None
    # systemd hosts: a unit that is not active or was restarted by systemd lately, with
    # its last journal lines (secrets masked); nothing for a healthy unit
    journal: tuple[UnitJournal, ...] = ()
    # halb's VRRP filter: what it dropped from whom, "absent"; None: not read
    vrrp_filter: str | None = None


@dataclass(frozen=True)
class VipStatus:
    name: str
    address: str
    holders: tuple[str, ...]
    family: int = 4


@dataclass(frozen=True)
class FrontendStatus:
    name: str
    vip: str
    seen_from: str | None  # the host whose HAProxy view counts (the VIP holder)
    up: int
    total: int


@dataclass(frozen=True)
class StatusReport:
    hosts: tuple[HostStatus, ...]
    vips: tuple[VipStatus, ...]
    frontends: tuple[FrontendStatus, ...]
    problems: tuple[str, ...]  # any one of these is exit 1
    notes: tuple[str, ...]
    # foreign VRRP senders and VIPs answered for by a foreign MAC (also in problems)
    intruders: tuple[Intruder, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def vip_holders(facts: Iterable[LbFacts], vips: Sequence[VipRef]) -> dict[str, list[str]]:
    """VIP name -> hosts that have its address configured."""
    return holders({f.host: f.addrs for f in facts}, {v.key: v.address for v in vips})


def assess(
    facts: Sequence[LbFacts],
    vips: Sequence[VipRef],
    frontends: Sequence[FrontendRef],
    *,
    local_neigh: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> StatusReport:
    problems: list[str] = []
    notes: list[str] = []
    holders = vip_holders(facts, vips)
    by_host = {f.host: f for f in facts}

    for v in vips:
        h = holders[v.key]
        if not h:
            problems.append(f"VIP {v.name} ({v.address}) is held by no LB host")
        elif len(h) > 1:
            problems.append(f"split brain: VIP {v.name} ({v.address}) is held by {' and '.join(h)}")

    host_status: list[HostStatus] = []
    for f in facts:
        if f.error:
            problems.append(f"{f.host}: unreachable: {f.error}")
        held = tuple(v.key for v in vips if f.host in holders[v.key])
        for v in vips:
            state = f.vrrp.get(v.instance)
            has = v.key in held
            if f.error:
                continue
            if state == "MASTER" and not has:
                notes.append(f"{f.host}: {v.instance} is MASTER but {v.address} is not on it")
            if has and state not in ("MASTER", None):
                notes.append(f"{f.host}: holds {v.address} while {v.instance} is {state}")
            if has and f.drained:
                notes.append(f"{f.host}: drained but still holds {v.address}")
        if not f.error and f.haproxy_pid is None:
            problems.append(f"{f.host}: HAProxy is not running")
        if not f.error and f.keepalived_pid is None:
            problems.append(f"{f.host}: keepalived is not running")
        redirect = _redirect_text(f, vips, frontends, problems, notes)
        backends = tuple(
            BackendStatus(r.pxname, r.svname, r.addr, r.status, r.check_status)
            for r in f.stats or ()
            if r.type == 2 and any(r.pxname == fe.name for fe in frontends)
        )
        host_status.append(
            HostStatus(
                host=f.host,
                reachable=f.error is None,
                error=f.error,
                vrrp=dict(f.vrrp),
                vips=held,
                haproxy_up=f.haproxy_pid is not None,
                haproxy_pid=f.haproxy_pid,
                keepalived_up=f.keepalived_pid is not None,
                drained=f.drained,
                redirect=redirect,
                backends=backends,
                journal=f.journal,
                vrrp_filter=f.vrrp_filter.text if f.vrrp_filter else None,
            )
        )
        for j in f.journal:
            if j.running:
                notes.append(f"{f.host}: {j.unit} {j.reason}")

    fe_status: list[FrontendStatus] = []
    for fe in frontends:
        # The VIP holder's HAProxy serves the traffic, so its view counts; else any view.
        order = [h for h in holders.get(fe.vip_name, []) if h in by_host]  # its IPv4 VIP
        order += [f.host for f in facts if f.host not in order]
        view = next((h for h in order if by_host[h].stats is not None), None)
        rows = (
            [r for r in (by_host[view].stats or ()) if r.type == 2 and r.pxname == fe.name]
            if view
            else []
        )
        up = sum(1 for r in rows if r.healthy)
        fe_status.append(FrontendStatus(fe.name, fe.vip_name, view, up, len(rows)))
        if view is None:
            problems.append(f"frontend {fe.name}: no LB host reported HAProxy statistics")
        elif up == 0:
            problems.append(f"frontend {fe.name}: no healthy backend (as {view} sees it)")
        elif up < len(rows):
            down = [r.svname for r in rows if not r.healthy]
            notes.append(f"frontend {fe.name}: {', '.join(down)} down (as {view} sees it)")

    single = [
        VipSeen(v.key, v.address, v.interface, holders[v.key][0])
        for v in vips
        if len(holders[v.key]) == 1
    ]
    intruders, seen = find(facts, single, local_neigh=local_neigh, names=names)
    problems += [i.text for i in intruders]
    notes += seen

    return StatusReport(
        hosts=tuple(host_status),
        vips=tuple(VipStatus(v.name, v.address, tuple(holders[v.key]), v.family) for v in vips),
        frontends=tuple(fe_status),
        problems=tuple(problems),
        notes=tuple(notes),
        intruders=tuple(intruders),
    )


def _redirect_text(
    f: LbFacts,
    vips: Sequence[VipRef],
    frontends: Sequence[FrontendRef],
    problems: list[str],
    notes: list[str],
) -> str | None:
    """The host's redirect as `halb status` shows it; a missing table is a problem, a VIP
    left out while HAProxy runs a note (keepalived's next state change restores it)."""
    want = [v for v in vips if any(fe.redirected and fe.vip_name == v.name for fe in frontends)]
    if not want or f.error:
        return None
    if f.redirect is None:
        problems.append(
            f"{f.host}: halb's nftables redirect is not loaded (a flushed ruleset?); the "
            "public ports reach this host's own backends only until keepalived's next state "
            f"change; `sh {REDIRECT_SCRIPT} load` on the host loads it now"
        )
        return "absent"
    missing = [v for v in want if v.address not in f.redirect]
    if missing and f.haproxy_pid is not None and not f.error:
        names = ", ".join(v.address for v in missing)
        notes.append(f"{f.host}: redirect inactive for {names} (keepalived reports FAULT?)")
    return "active " + ", ".join(f.redirect) if f.redirect else "inactive"


def refs(cluster: Cluster) -> tuple[list[VipRef], list[FrontendRef]]:
    """The parts of a Cluster the assessment needs."""
    vips = [
        VipRef(v.name, v.address, v.instance, v.family, v.label, v.interface) for v in cluster.vips
    ]
    fes = [
        FrontendRef(
            fe.name, fe.vip_name, tuple(b.name for b in fe.backends), fe.listen_port is not None
        )
        for fe in cluster.frontends
    ]
    return vips, fes


def known_secrets(cluster: Cluster) -> list[str]:
    """Every secret halb knows of, masked in any journal line it shows."""
    found = [cluster.auth_password]
    for h in cluster.inventory.hosts.values():
        found += [h.password, h.become_password]
    return sorted({s for s in found if s}, key=len, reverse=True)  # longest first


def render_text(report: StatusReport) -> list[str]:
    """Human lines for `halb status`."""
    lines: list[str] = []
    for h in report.hosts:
        if not h.reachable:
            lines.append(f"{h.host}: unreachable ({h.error})")
            continue
        vrrp = ", ".join(f"{k}={v or '?'}" for k, v in sorted(h.vrrp.items())) or "no state"
        held = ", ".join(h.vips) or "none"
        ha = f"up (master {h.haproxy_pid})" if h.haproxy_up else "DOWN"
        ka = "up" if h.keepalived_up else "DOWN"
        name = f"{h.host} (drained)" if h.drained else h.host
        red = f"; redirect {h.redirect}" if h.redirect is not None else ""
        red += f"; vrrp filter {h.vrrp_filter}" if h.vrrp_filter is not None else ""
        lines.append(f"{name}: vrrp {vrrp}; holds {held}; haproxy {ha}; keepalived {ka}{red}")
        for j in h.journal:
            source = "systemd's last lines on it" if j.running else "last journal lines"
            lines.append(f"  {j.unit} {j.reason}; {source}:")
            lines += [f"    {ln}" for ln in j.lines] or ["    (none)"]
    for v in report.vips:
        lines.append(f"VIP {v.name} {v.address}: {', '.join(v.holders) or 'no holder'}")
    for fe in report.frontends:
        lines.append(
            f"frontend {fe.name}: {fe.up}/{fe.total} backends up"
            + (f" (seen from {fe.seen_from})" if fe.seen_from else "")
        )
        view = next((h for h in report.hosts if h.host == fe.seen_from), None)
        for b in view.backends if view else ():
            if b.frontend == fe.name:
                lines.append(f"  {b.server} {b.address} {b.status} {b.check}".rstrip())
    lines += [f"note: {n}" for n in report.notes]
    lines += [f"PROBLEM: {p}" for p in report.problems]
    return lines
