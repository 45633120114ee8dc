"""One LB host's running state in one round trip: its addresses, the VRRP state each
keepalived instance recorded, HAProxy's statistics, and the services' main pids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from halb.errors import HalbError
from halb.facts.haproxy import SHOW_STAT, StatRow, parse_show_stat
from halb.facts.ipaddr import IfAddr, parse_ip_addr
from halb.paths import DRAIN_FLAG, VRRP_STATE_DIR
from halb.services import ServiceManager
from halb.transport import Transport, sh

VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")

GATHER = f"""
echo @@ip; ip -o addr show
for f in {VRRP_STATE_DIR}/vrrp-*.state; do [ -f "$f" ] && {{ echo "@@state $f"; cat "$f"; }}; done
echo @@stat
{SHOW_STAT}
[ -e {DRAIN_FLAG} ] && echo @@drained
echo @@end
"""


@dataclass(frozen=True)
class LbFacts:
    """Raw observations of one LB host (or why there are none)."""

    host: str
    error: str | None = None
    addrs: tuple[IfAddr, ...] = ()
    vrrp: Mapping[str, str | None] = field(default_factory=dict)  # instance -> state
    haproxy_pid: int | None = None
    keepalived_pid: int | None = None
    stats: tuple[StatRow, ...] | None = None  # None: could not read
    drained: bool = False  # `halb drain` flag present


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


def facts_from_output(host: str, text: str) -> LbFacts:
    """Pure: one host's gathered output -> facts (pids are filled in by the caller)."""
    sec = split_sections(text)
    vrrp: dict[str, str | None] = {}
    for key, body in sec.items():
        if key.startswith("state "):
            name = key.split("/")[-1].removeprefix("vrrp-").removesuffix(".state")
            vrrp[name] = parse_vrrp_state(body)
    stat_text = sec.get("stat", "")
    stats = parse_show_stat(stat_text) if stat_text.strip() else None
    return LbFacts(
        host,
        addrs=parse_ip_addr(sec.get("ip", "")),
        vrrp=vrrp,
        stats=stats,
        drained="drained" in sec,
    )


def gather_host(t: Transport, svc: ServiceManager) -> LbFacts:
    try:
        res = t.run(sh(GATHER), timeout=30)
        f = facts_from_output(t.name, res.out)
        pids = svc.main_pids()
        return LbFacts(
            host=f.host,
            addrs=f.addrs,
            vrrp=f.vrrp,
            stats=f.stats,
            haproxy_pid=pids["haproxy"],
            keepalived_pid=pids["keepalived"],
            drained=f.drained,
        )
    except HalbError as e:
        return LbFacts(t.name, error=str(e).removeprefix(f"{t.name}: "))
