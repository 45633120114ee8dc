"""One LB host's running state in one round trip: its addresses, the VRRP state each
keepalived instance recorded, HAProxy's statistics, and the services' main pids. The
script and its parsers; `halb.gather` runs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from halb import vrrp_filter
from halb.errors import HalbError
from halb.facts.haproxy import SHOW_STAT, StatRow, parse_show_stat
from halb.facts.ipaddr import IfAddr, parse_ip_addr
from halb.facts.journal import UnitJournal
from halb.facts.neigh import parse_link_macs, parse_neigh
from halb.paths import DRAIN_FLAG, REDIRECT_TABLE, VRRP_STATE_DIR
from halb.redirect import parse_status
from halb.shell import quote

VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")

GATHER = f"""
echo @@ip; ip -o addr show
for f in {VRRP_STATE_DIR}/vrrp-*.state; do [ -f "$f" ] && {{ echo "@@state $f"; cat "$f"; }}; done
echo @@stat
{SHOW_STAT}
[ -e {DRAIN_FLAG} ] && echo @@drained
echo @@redirect; nft list set ip {REDIRECT_TABLE} healthy 2>/dev/null
echo @@vrrp_filter; {vrrp_filter.STATUS}
echo @@link; ip -o link show
echo @@neigh; ip -o neigh show
echo @@end
"""
# Put before GATHER's end: the service manager's state command, so one round trip tells
# it all, and the host's clock (uptime, to compare with systemd's monotonic timestamps).
_UNITS = """
echo @@units
{command}
echo @@uptime; cat /proc/uptime
"""


def gather_script(units_argv: Sequence[str]) -> str:
    """GATHER with the service manager's pids (or unit state) command in it."""
    head, end, tail = GATHER.rpartition("echo @@end")
    return head + _UNITS.format(command=quote(units_argv)).lstrip("\n") + end + tail


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
    # VIPs halb's nftables redirect sends to HAProxy now; None: no such table loaded
    redirect: tuple[str, ...] | None = None
    journal: tuple[UnitJournal, ...] = ()  # the last lines of the units that are not well
    # halb's VRRP filter (what it dropped, from whom; "absent" after a reboot, say); None:
    # not read
    vrrp_filter: vrrp_filter.FilterState | None = None
    macs: Mapping[str, str] = field(default_factory=dict)  # interface -> its MAC
    neigh: Mapping[str, str] = field(default_factory=dict)  # address -> MAC it is sent to


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
        redirect=_redirect(sec.get("redirect", "")),
        vrrp_filter=_vrrp_filter(sec.get("vrrp_filter")),
        macs=parse_link_macs(sec.get("link", "")),
        neigh=parse_neigh(sec.get("neigh", "")),
    )


def _vrrp_filter(text: str | None) -> vrrp_filter.FilterState | None:
    """The filter as loaded, or not loaded (shown: the table is not reloaded at boot)."""
    if text is None:
        return None
    try:
        return vrrp_filter.parse_status(text)
    except HalbError:
        return None


def _redirect(text: str) -> tuple[str, ...] | None:
    state = parse_status(text)
    return state.vips if state.present else None


def parse_uptime(text: str) -> float | None:
    """Seconds since boot, the first number of /proc/uptime."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        return None
