"""Records of a drill: timestamped client probes, captured packets, one round's facts.

Every time is a Unix wall-clock time in seconds (float). The lab's hosts share one
clock; on real hosts the LB hosts' clocks must be synchronised (NTP) for the packet
times they report to line up with the client's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from halb.drill.fault_kinds import FAULTS as FAULTS  # `all` runs them in this order


@dataclass(frozen=True)
class Probe:
    """One client request through a VIP: a new connection, a GET, the status line."""

    frontend: str
    start: float
    end: float
    ok: bool
    error: str = ""  # "" when ok; else a short kind: timeout, refused, reset, tls, http 500...


@dataclass(frozen=True)
class Packet:
    """A VRRP advert, a gratuitous ARP, an unsolicited neighbour advertisement or a TCP
    SYN-ACK from a VIP, as seen on the wire."""

    ts: float
    observer: str  # the host whose capture saw it
    kind: str  # "advert" | "garp" | "na" | "synack"
    src: str  # sender's IPv4 or IPv6 address (an IPv6 advert's may be link-local)
    mac: str  # sender's MAC address
    # garp, na: the announced address (an NA's target); synack: the VIP that answered
    addr: str = ""
    vrid: int | None = None
    prio: int | None = None


ANNOUNCEMENTS = ("garp", "na")  # a host taking a VIP announces it: IPv4 by ARP, IPv6 by NDP


def family(address: str) -> int:
    return 6 if ":" in address else 4


def lane(frontend: str, fam: int) -> str:
    """The name a frontend's probes go by through its VIP of one family: the frontend's
    own for IPv4, with a 6 for IPv6, as the VIPs' labels ("internal6")."""
    return frontend if fam == 4 else f"{frontend}6"


@dataclass
class RoundRecord:
    """Everything observed in one round; the figures are computed from it (report.py)."""

    fault: str
    index: int
    target: str  # the LB host the fault was injected on (the holder of the first VIP)
    vips: dict[str, str]  # VIP label ("internal", "internal6" for IPv6) -> address
    # the probed lanes -> VIP label: a frontend's name for its IPv4 VIP, its name and a 6
    # for its IPv6 VIP ("apiserver6", as the VIP is "internal6"); see `lane`
    frontends: dict[str, str]
    lb_addresses: dict[str, str]  # LB host -> its own address
    macs: dict[str, str]  # LB host -> MAC of its VIP interface
    rate: float  # probes per second per frontend
    t_start: float = 0.0
    t_fault: float = 0.0  # as the target host's clock saw the injection
    t_restore: float = 0.0
    t_end: float = 0.0
    holders_before: dict[str, list[str]] = field(default_factory=dict)
    holders_end: dict[str, list[str]] = field(default_factory=dict)
    # (time, VIP name -> holders) polled during the fault
    polls: list[tuple[float, dict[str, list[str]]]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    packets: list[Packet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["polls"] = [{"t": t, "holders": h} for t, h in self.polls]
        return d


def record_from_dict(d: dict[str, Any]) -> RoundRecord:
    """A round back from its --json form (report.document), e.g. to recompute figures."""
    fields = d.get("probe_fields", ["frontend", "start", "end", "ok", "error"])
    probes = [Probe(**dict(zip(fields, row, strict=True))) for row in d["probes"]]
    packets = [Packet(**p) for p in d["packets"]]
    polls = [(float(p["t"]), {k: list(v) for k, v in p["holders"].items()}) for p in d["polls"]]
    keep = {
        k: d[k]
        for k in (
            "fault", "index", "target", "vips", "frontends", "lb_addresses", "macs", "rate",
            "t_start", "t_fault", "t_restore", "t_end", "holders_before", "holders_end", "notes",
        )
    }  # fmt: skip
    return RoundRecord(**keep, polls=polls, probes=probes, packets=packets)
