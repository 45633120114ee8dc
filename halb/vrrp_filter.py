"""halb's VRRP filter: the LB hosts' (interface, address, MAC) as `halb deploy` learns them,
the nftables table `inet halb_vrrp` that accepts VRRP only from those (templates/
vrrp.nft.j2), and the parsers of what it counted and dropped (pure; the MACs are read
by `halb.gather.learn_macs`).

keepalived's `check_unicast_src` checks the source address, a field anyone on the segment
can forge, and VRRP's own authentication is a clear-text password (v2) or none (v3). The
MAC of the sending port is harder to forge on a switched segment with port security, and
it is what this table checks besides the address. A peer whose NIC was replaced would be
locked out by it, so the MACs are read again at every deploy (and each host checks its
own MAC just before it loads the table), and preflight compares the table each host runs
with its peers' MACs now (`mac_changes`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from halb.errors import HalbError
from halb.paths import VRRP_NFT, VRRP_TABLE
from halb.shell import sh
from halb.spec import Cluster

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# interface -> MAC, one "IFACE MAC" line each ("-" when the interface does not exist),
# then whether nft is there to load the filter, and whether the filter is loaded now (a
# reboot drops it: the next deploy loads it again, its file unchanged)
_MACS = (
    'for i in "$@"; do m=$(cat "/sys/class/net/$i/address" 2>/dev/null) || m=-; '
    'printf "%s %s\\n" "$i" "$m"; done; '
    "command -v nft >/dev/null 2>&1 && echo '@nft yes' || echo '@nft no'; "
    f"nft list table inet {VRRP_TABLE} >/dev/null 2>&1 && echo '@loaded yes' || :"
)
# $1 the table file, then pairs of interface and the MAC the table was rendered with: each
# must still be this host's, else nothing is loaded (a NIC replaced since the MACs were read)
_LOAD = """
f=$1; shift
while [ $# -gt 1 ]; do
  m=$(cat "/sys/class/net/$1/address" 2>/dev/null)
  [ "$m" = "$2" ] || { echo "the MAC of $1 is ${m:-missing} now, not $2 as learned"; exit 3; }
  shift 2
done
exec nft -f "$f"
"""
_DROP = (
    f"command -v nft >/dev/null 2>&1 || exit 0; nft list table inet {VRRP_TABLE} "
    f">/dev/null 2>&1 || exit 0; nft delete table inet {VRRP_TABLE}"
)
# The table gone (a rolled-back deploy that created it, or a host no longer an LB host).
DROP_ARGV = ["sh", "-c", _DROP]
# A rollback that put the former file back: load it as it is (its MACs are the former ones).
RELOAD_ARGV = ["nft", "-f", VRRP_NFT]
# What `halb status` (in its gather script, so no `exit`) and preflight read: the whole
# table as JSON, or a marker.
STATUS = (
    "if command -v nft >/dev/null 2>&1; then "
    f"nft -j list table inet {VRRP_TABLE} 2>/dev/null || echo absent; else echo no-nft; fi"
)
STATUS_ARGV = ["sh", "-c", STATUS]


def interfaces(cluster: Cluster) -> tuple[str, ...]:
    """The VIPs' interfaces, in order, once each."""
    return tuple(dict.fromkeys(v.interface for v in cluster.vips))


def macs_argv(ifaces: tuple[str, ...]) -> list[str]:
    return sh(_MACS, *ifaces)


def parse_macs(out: str) -> dict[str, str]:
    """`IFACE MAC` lines -> {interface: MAC}; an interface without one is left out."""
    got: dict[str, str] = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and MAC_RE.match(words[1].lower()):
            got[words[0]] = words[1].lower()
    return got


def context(cluster: Cluster, host: str, macs: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """What vrrp.nft.j2 needs on `host`: its peers' pairs on each VIP interface."""
    ifaces = interfaces(cluster)
    peers = [h for h in cluster.lb_hosts if h.name != host]
    v4 = [
        (i, cluster.host_ip(h), macs[h.name][i], h.name)
        for h in peers
        for i in ifaces
        if ":" not in cluster.host_ip(h)
    ]
    v6 = [(i, macs[h.name][i], h.name) for h in peers for i in ifaces]
    return {"table": VRRP_TABLE, "interfaces": ifaces, "peers4": v4, "peers6": v6}


def load_argv(own: Mapping[str, str]) -> list[str]:
    """Load the table once this host's own MACs are still the ones it was rendered with."""
    return sh(_LOAD, VRRP_NFT, *(x for i, m in own.items() for x in (i, m)))


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Foreign:
    """A sender whose VRRP the table dropped: its interface, address, MAC and count."""

    interface: str
    address: str
    mac: str
    packets: int

    @property
    def text(self) -> str:
        return f"{self.address} from MAC {self.mac} on {self.interface} ({self.packets} dropped)"


@dataclass(frozen=True)
class FilterState:
    present: bool  # the table is loaded
    nft: bool = True  # nft exists on the host
    peers: tuple[tuple[str, str, str], ...] = ()  # (interface, address, MAC) accepted
    peer_macs: tuple[tuple[str, str], ...] = ()  # (interface, MAC) accepted for IPv6
    foreign: tuple[Foreign, ...] = ()
    dropped: int = 0  # every VRRP packet dropped since the table was loaded

    @property
    def text(self) -> str:
        if not (self.nft and self.present):
            return "absent" if self.nft else "no nft"
        if not self.foreign:
            return f"active, {len(self.peers)} peer(s), nothing dropped"
        return f"active, dropped {self.dropped}: " + "; ".join(f.text for f in self.foreign)


def parse_status(out: str) -> FilterState:
    """Parse `nft -j list table inet halb_vrrp` (or the markers STATUS_ARGV prints)."""
    text = out.strip()
    if text == "no-nft":
        return FilterState(False, nft=False)
    if not text or text.endswith("absent"):
        return FilterState(False)
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise HalbError(f"{VRRP_TABLE}: nft printed no JSON ({e})") from e
    peers: list[tuple[str, str, str]] = []
    peer_macs: list[tuple[str, str]] = []
    foreign: list[Foreign] = []
    dropped = 0
    for obj in doc.get("nftables", []):
        if "counter" in obj and obj["counter"].get("name") == "dropped":
            dropped = int(obj["counter"].get("packets", 0))
        s = obj.get("set")
        if not s:
            continue
        for el in s.get("elem", []):
            val, packets = _element(el)
            if s["name"] == "peers4" and len(val) == 3:
                peers.append((val[0], val[1], val[2].lower()))
            elif s["name"] == "peers6" and len(val) == 2:
                peer_macs.append((val[0], val[1].lower()))
            elif s["name"] in ("foreign4", "foreign6") and len(val) == 3:
                foreign.append(Foreign(val[0], val[1], val[2].lower(), packets))
    return FilterState(True, True, tuple(peers), tuple(peer_macs), tuple(foreign), dropped)


def _element(el: Any) -> tuple[list[str], int]:
    """One set element: {"concat": [...]} or {"elem": {"val": {"concat": [...]},
    "counter": {...}}}, as nft -j prints them."""
    packets = 0
    if isinstance(el, dict) and "elem" in el:
        packets = int(el["elem"].get("counter", {}).get("packets", 0))
        el = el["elem"].get("val")
    if isinstance(el, dict) and "concat" in el:
        return [str(x) for x in el["concat"]], packets
    return [], packets


@dataclass(frozen=True)
class MacChange:
    """A peer's MAC on an interface is not the one another host's table accepts."""

    host: str  # the peer whose MAC changed
    interface: str
    now: str
    accepted: str
    on: str  # the host whose table would drop its adverts

    @property
    def text(self) -> str:
        return (
            f"the MAC of {self.host}'s {self.interface} is {self.now} now, but {self.on}'s "
            f"VRRP filter ({VRRP_TABLE}) accepts its adverts only from {self.accepted} (a "
            f"replaced NIC?): {self.on} drops them and takes the VIPs too until `halb "
            "deploy` learns the new MAC"
        )


def mac_changes(
    cluster: Cluster,
    macs: Mapping[str, Mapping[str, str]],
    tables: Mapping[str, FilterState],
) -> list[MacChange]:
    """Each host's loaded table against its peers' MACs now."""
    by_ip = {cluster.host_ip(h): h.name for h in cluster.lb_hosts}
    out: list[MacChange] = []
    for on, st in tables.items():
        for iface, addr, mac in st.peers:
            peer = by_ip.get(addr)
            now = macs.get(peer or "", {}).get(iface)
            if peer and now and now != mac:
                out.append(MacChange(peer, iface, now, mac, on))
    return out
