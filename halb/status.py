"""What the LB hosts are doing: VRRP state, VIP holders, HAProxy and backend health.

Pure parsers of captured text (`ip -o addr`, HAProxy `show stat` CSV, the notify state
files) and a pure assessment; `gather` is the only part that talks to hosts.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from halb.drain.flag import DRAIN_FLAG
from halb.errors import HalbError
from halb.services import ServiceManager, manager
from halb.transport import Transport, TransportFactory, for_host, sh

STATE_DIR = "/run/halb"
ADMIN_SOCKET = "/run/haproxy/admin.sock"
STATS_CSV_URL = "http://127.0.0.1:8404/stats;csv"
VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")

# ----------------------------------------------------------------------------- parsers


@dataclass(frozen=True)
class IfAddr:
    ifname: str
    family: str  # "inet" | "inet6"
    address: str
    prefixlen: int
    label: str  # the address label (keepalived's "eth0:halb0"), else the ifname


_IP_ADDR = re.compile(
    r"^\d+:\s+(?P<ifname>[^\s@]+)(?:@\S+)?\s+(?P<family>inet6?)\s+"
    r"(?P<addr>[0-9a-fA-F.:]+)(?:/(?P<plen>\d+))?(?P<rest>.*)$"
)


def parse_ip_addr(text: str) -> tuple[IfAddr, ...]:
    """Parse `ip -o addr show` (one address per line)."""
    out: list[IfAddr] = []
    for line in text.splitlines():
        m = _IP_ADDR.match(line.strip())
        if not m:
            continue
        family = m["family"]
        plen = int(m["plen"]) if m["plen"] else (32 if family == "inet" else 128)
        # the label is the last word before the "\" that separates the lifetimes
        rest = m["rest"].split("\\", 1)[0].split()
        label = rest[-1] if rest and not rest[-1].isdigit() and rest[-1] != "noprefixroute" else ""
        if not label or label in ("global", "host", "link", "dynamic", "secondary"):
            label = m["ifname"]
        out.append(IfAddr(m["ifname"], family, m["addr"], plen, label))
    return tuple(out)


@dataclass(frozen=True)
class StatRow:
    pxname: str
    svname: str
    type: int  # 0 frontend, 1 backend, 2 server, 3 listener
    status: str  # UP, DOWN, "UP 1/3", "DOWN 1/2", MAINT, DRAIN, no check, OPEN ...
    check_status: str
    addr: str

    @property
    def healthy(self) -> bool:
        """Taking traffic as far as HAProxy is concerned."""
        s = self.status.upper()
        return s.startswith("UP") or s == "NO CHECK"


def parse_show_stat(text: str) -> tuple[StatRow, ...]:
    """Parse HAProxy's `show stat` / `;csv` output (header line starts with '# ')."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("#"):
        return ()
    header = lines[0].lstrip("#").strip()
    reader = csv.DictReader(io.StringIO("\n".join([header, *lines[1:]])))
    rows: list[StatRow] = []
    for r in reader:
        try:
            kind = int(r.get("type") or -1)
        except ValueError:
            kind = -1
        rows.append(
            StatRow(
                pxname=r.get("pxname") or "",
                svname=r.get("svname") or "",
                type=kind,
                status=(r.get("status") or "").strip(),
                check_status=(r.get("check_status") or "").strip(),
                addr=(r.get("addr") or "").strip(),
            )
        )
    return tuple(rows)


def parse_vrrp_state(text: str) -> str | None:
    """The state the notify script recorded (first word), None when unreadable."""
    word = text.strip().split()[0].upper() if text.strip() else ""
    return word if word in VRRP_STATES else None


def split_sections(text: str) -> dict[str, str]:
    """Split gathered output into '@@name' sections."""
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            cur = out.setdefault(line[2:].strip(), [])
        elif cur is not None:
            cur.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


# -------------------------------------------------------------------------- assessment


@dataclass(frozen=True)
class VipRef:
    name: str
    address: str
    instance: str


@dataclass(frozen=True)
class FrontendRef:
    name: str
    vip_name: str
    backends: tuple[str, ...]  # server names


@dataclass(frozen=True)
class HostFacts:
    """Raw observations of one LB host (or why there are none)."""

    host: str
    error: str | None = None
    addrs: tuple[IfAddr, ...] = ()
    vrrp: Mapping[str, str | None] = field(default_factory=dict)  # instance -> state
    haproxy_pid: int | None = None
    keepalived_pid: int | None = None
    stats: tuple[StatRow, ...] | None = None  # None: could not read
    drained: bool = False  # `halb drain` flag present


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
    vips: tuple[str, ...]  # VIP names held
    haproxy_up: bool
    haproxy_pid: int | None
    keepalived_up: bool
    backends: tuple[BackendStatus, ...]
    drained: bool = False


@dataclass(frozen=True)
class VipStatus:
    name: str
    address: str
    holders: tuple[str, ...]


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

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def vip_holders(facts: Iterable[HostFacts], vips: Sequence[VipRef]) -> dict[str, list[str]]:
    """VIP name -> hosts that have its address configured."""
    out: dict[str, list[str]] = {v.name: [] for v in vips}
    for f in facts:
        have = {a.address for a in f.addrs}
        for v in vips:
            if v.address in have:
                out[v.name].append(f.host)
    return out


def assess(
    facts: Sequence[HostFacts], vips: Sequence[VipRef], frontends: Sequence[FrontendRef]
) -> StatusReport:
    problems: list[str] = []
    notes: list[str] = []
    holders = vip_holders(facts, vips)
    by_host = {f.host: f for f in facts}

    for v in vips:
        h = holders[v.name]
        if not h:
            problems.append(f"VIP {v.name} ({v.address}) is held by no LB host")
        elif len(h) > 1:
            problems.append(f"split brain: VIP {v.name} ({v.address}) is held by {' and '.join(h)}")

    host_status: list[HostStatus] = []
    for f in facts:
        if f.error:
            problems.append(f"{f.host}: unreachable: {f.error}")
        held = tuple(v.name for v in vips if f.host in holders[v.name])
        for v in vips:
            state = f.vrrp.get(v.instance)
            has = v.name in held
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
                backends=backends,
                drained=f.drained,
            )
        )

    fe_status: list[FrontendStatus] = []
    for fe in frontends:
        # The VIP holder's HAProxy serves the traffic, so its view counts; else any view.
        order = [h for h in holders.get(fe.vip_name, []) if h in by_host]
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

    return StatusReport(
        hosts=tuple(host_status),
        vips=tuple(VipStatus(v.name, v.address, tuple(holders[v.name])) for v in vips),
        frontends=tuple(fe_status),
        problems=tuple(problems),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------- gathering

_GATHER = f"""
echo @@ip; ip -o addr show
for f in {STATE_DIR}/vrrp-*.state; do [ -f "$f" ] && {{ echo "@@state $f"; cat "$f"; }}; done
echo @@stat
if command -v socat >/dev/null 2>&1 && [ -S {ADMIN_SOCKET} ]; then
  echo 'show stat' | socat -t 2 - UNIX-CONNECT:{ADMIN_SOCKET}
elif command -v curl >/dev/null 2>&1; then
  curl -s -m 3 '{STATS_CSV_URL}'
fi
[ -e {DRAIN_FLAG} ] && echo @@drained
echo @@end
"""


def facts_from_output(host: str, text: str) -> HostFacts:
    """Pure: one host's gathered output -> facts (pids are filled in by the caller)."""
    sec = split_sections(text)
    vrrp: dict[str, str | None] = {}
    for key, body in sec.items():
        if key.startswith("state "):
            name = key.split("/")[-1].removeprefix("vrrp-").removesuffix(".state")
            vrrp[name] = parse_vrrp_state(body)
    stat_text = sec.get("stat", "")
    stats = parse_show_stat(stat_text) if stat_text.strip() else None
    return HostFacts(
        host,
        addrs=parse_ip_addr(sec.get("ip", "")),
        vrrp=vrrp,
        stats=stats,
        drained="drained" in sec,
    )


def gather_host(t: Transport, svc: ServiceManager) -> HostFacts:
    try:
        res = t.run(sh(_GATHER), timeout=30)
        f = facts_from_output(t.name, res.out)
        pids = svc.main_pids()
        return HostFacts(
            host=f.host,
            addrs=f.addrs,
            vrrp=f.vrrp,
            stats=f.stats,
            haproxy_pid=pids["haproxy"],
            keepalived_pid=pids["keepalived"],
            drained=f.drained,
        )
    except HalbError as e:
        return HostFacts(t.name, error=str(e).removeprefix(f"{t.name}: "))


def addrs_of(t: Transport) -> tuple[IfAddr, ...]:
    return parse_ip_addr(t.run(["ip", "-o", "addr", "show"], timeout=30, check=True).out)


def refs(cluster: Any) -> tuple[list[VipRef], list[FrontendRef]]:
    """The parts of a Cluster the assessment needs."""
    vips = [VipRef(v.name, v.address, v.instance) for v in cluster.vips]
    fes = [
        FrontendRef(fe.name, fe.vip_name, tuple(b.name for b in fe.backends))
        for fe in cluster.frontends
    ]
    return vips, fes


def status(cluster: Any, *, transport_for: TransportFactory = for_host) -> StatusReport:
    """Gather every LB host in parallel and assess."""
    hosts = list(cluster.lb_hosts)
    transports = [transport_for(h) for h in hosts]
    try:

        def one(i: int) -> HostFacts:
            return gather_host(
                transports[i], manager(cluster.service_manager(hosts[i]), transports[i])
            )

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            facts = list(pool.map(one, range(len(hosts))))
    finally:
        for t in transports:
            t.close()
    vips, fes = refs(cluster)
    return assess(facts, vips, fes)


Printer = Callable[[str], None]


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
        lines.append(f"{name}: vrrp {vrrp}; holds {held}; haproxy {ha}; keepalived {ka}")
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
