"""What one LB host told the preflight (pure records): collected in parallel, judged
afterwards, nothing decided while collecting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from halb.facts.firewall import Verdict
from halb.facts.ipaddr import IfAddr
from halb.facts.packets import ArpReply
from halb.facts.ss import Listener
from halb.preflight.report import PreflightResult
from halb.vrrp_filter import FilterState


@dataclass(frozen=True)
class FirewallState:
    """What the host's firewalls do to VRRP from its peers, for one address family. IPv6
    has one per peer (each judged on its own), or one for the peers' link-local addresses
    (fe80::/10) where its instances send multicast adverts."""

    peers: tuple[str, ...]  # the other LB hosts' addresses (or VRRP's multicast group)
    verdicts: tuple[Verdict, ...]
    firewalld_blocks: bool
    family: int = 4

    @property
    def drops(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.drops)


@dataclass(frozen=True)
class NftProbe:
    """What `nft -c` said of a table of the redirect's shape (NAT at prerouting and
    output): its exit status and its last line (why it refused), nothing added."""

    rc: int
    said: str = ""


@dataclass(frozen=True)
class Observed:
    """One LB host's raw answers. `notes`: how it was reached (SSH, root), `gaps`: what
    could not be asked (a tool missing), both as findings already."""

    host: str
    notes: tuple[PreflightResult, ...] = ()
    gaps: tuple[PreflightResult, ...] = ()
    reachable: bool = False  # SSH worked (root may not have)
    root: bool = False  # commands ran as root: every field below was read
    links: tuple[str, ...] = ()
    addrs: tuple[IfAddr, ...] = ()  # IPv4
    # interface -> VIP -> keepalived.conf names it (asked only where a VIP is held)
    configured: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    arp: Mapping[str, tuple[ArpReply, ...]] = field(default_factory=dict)
    mac: str | None = None
    listeners: tuple[Listener, ...] | None = None  # None: could not list them
    firewall: FirewallState | None = None  # IPv4, where a VIP is IPv4
    firewall6: tuple[FirewallState, ...] = ()  # IPv6 (VRRPv3), where a VIP is IPv6
    # asked only when a frontend is redirected (halb/redirect.py); None: not asked
    nft: NftProbe | None = None
    # the VIPs' interfaces -> their MAC, and halb's VRRP filter as loaded (None: not read)
    macs: Mapping[str, str] = field(default_factory=dict)
    vrrp_filter: FilterState | None = None
