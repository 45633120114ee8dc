"""The drill over IPv6 without a lab: the capture agent's filter and the decoder on frames
built with scapy (unsolicited neighbour advertisements, VRRPv3 over IPv6, SYN-ACKs, with
and without extension headers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRPv3
from scapy.packet import Packet as ScapyPacket

from halb.drill import capture
from halb.drill.model import Packet

CASES = Path(__file__).parent.parent / "golden" / "cases"
OLD_MAC, NEW_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
VIP4, VIP6, VIP6B = "10.9.0.253", "fd00:9::253", "fd00:9::254"
ALL_NODES = "33:33:00:00:00:01"


def agent_filter() -> dict[str, Any]:
    """The agent's own filter functions, run as the agent runs them."""
    ns: dict[str, Any] = {}
    exec(capture.AGENT_FILTER, ns)
    return ns


def kept(frame: ScapyPacket, vips: tuple[str, ...] = (VIP4, VIP6)) -> bytes | None:
    """What the agent would print of a frame (None: dropped)."""
    ns = agent_filter()
    raw = bytes(frame)
    cut: int = ns["keep"](raw, *ns["wanted"](vips))
    return raw[:cut] if cut else None


def decoded(frame: ScapyPacket, observer: str = "client") -> Packet | None:
    """The agent's filter, its output line, and the decoder, as in a drill."""
    raw = kept(frame)
    return None if raw is None else capture.parse_line(observer, f"100.250000 {raw.hex()}")


def una(target: str, mac: str = NEW_MAC, src: str = "fd00:9::12", **flags: int) -> ScapyPacket:
    """An unsolicited neighbour advertisement, as keepalived sends for a VIP it takes."""
    na = ICMPv6ND_NA(tgt=target, R=0, S=flags.get("S", 0), O=1)
    return (
        Ether(src=mac, dst=ALL_NODES)
        / IPv6(src=src, dst="ff02::1", hlim=255)
        / na
        / ICMPv6NDOptDstLLAddr(lladdr=mac)
    )


def advert6(prio: int, *ext: ScapyPacket, src: str = "fe80::1") -> ScapyPacket:
    v = VRRPv3(vrid=61, priority=prio, ipcount=1, addrlist=[VIP6])
    ip: ScapyPacket = IPv6(src=src, dst="ff02::12", hlim=255)
    for e in ext:
        ip = ip / e
    return Ether(src=OLD_MAC, dst="33:33:00:00:00:12") / ip / v


def test_unsolicited_na_for_a_vip_is_an_announcement_others_are_not() -> None:
    p = decoded(una(VIP6))
    assert p is not None
    assert (p.kind, p.addr, p.mac, p.src, p.ts) == ("na", VIP6, NEW_MAC, "fd00:9::12", 100.25)
    # a solicited NA answers a neighbour solicitation: no announcement (as an ARP reply)
    assert kept(una(VIP6, S=1)) is not None and decoded(una(VIP6, S=1)) is None
    # an NA for an address that is no VIP, and a solicitation, never leave the host
    assert kept(una("fd00:9::77")) is None
    ns = Ether(src=NEW_MAC) / IPv6(src="fd00:9::5", dst="ff02::1:ff00:253") / ICMPv6ND_NS(tgt=VIP6)
    assert kept(ns) is None


def test_vrrpv3_over_ipv6_with_source_and_priority_past_extension_headers() -> None:
    plain = decoded(advert6(254))
    assert plain is not None
    assert (plain.kind, plain.src, plain.mac, plain.vrid, plain.prio) == (
        "advert",
        "fe80::1",
        OLD_MAC,
        61,
        254,
    )
    hop = advert6(0, IPv6ExtHdrHopByHop(options=[RouterAlert()]), src="fd00:9::11")
    raw = kept(hop)
    assert raw is not None and len(raw) >= 14 + 40 + 8 + 8  # the cut covers VRRP's header
    p = decoded(hop)
    assert p is not None and (p.kind, p.src, p.vrid, p.prio) == ("advert", "fd00:9::11", 61, 0)
    two = advert6(100, IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(offset=0, m=0))
    p = decoded(two)
    assert p is not None and (p.kind, p.prio) == ("advert", 100)
    # a later fragment carries no VRRP header: dropped by the agent and by the decoder
    later = advert6(100, IPv6ExtHdrFragment(offset=4, m=0))
    assert kept(later) is None
    assert capture.decode("x", 1.0, bytes(later)) is None


def test_synack_from_an_ipv6_vip_with_and_without_extension_headers() -> None:
    def synack(src: str, *ext: ScapyPacket, flags: str = "SA") -> ScapyPacket:
        ip: ScapyPacket = IPv6(src=src, dst="fd00:9::5")
        for e in ext:
            ip = ip / e
        return Ether(src=OLD_MAC) / ip / TCP(sport=6443, dport=40000, flags=flags)

    p = decoded(synack(VIP6))
    assert p is not None and (p.kind, p.addr, p.src, p.mac) == ("synack", VIP6, VIP6, OLD_MAC)
    p = decoded(synack(VIP6, IPv6ExtHdrDestOpt()))
    assert p is not None and (p.kind, p.addr) == ("synack", VIP6)
    assert kept(synack("fd00:9::12")) is None  # not from a VIP
    assert kept(synack(VIP6, flags="S")) is None and kept(synack(VIP6, flags="R")) is None


def test_the_agent_keeps_ipv4_frames_as_before() -> None:
    garp = Ether(src=OLD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=OLD_MAC, psrc=VIP4, pdst=VIP4)
    synack = Ether(src=OLD_MAC) / IP(src=VIP4, dst="10.9.0.5") / TCP(flags="SA")
    other = Ether(src=OLD_MAC) / IP(src="10.9.0.12", dst="10.9.0.5") / TCP(flags="SA")
    for frame, want in ((garp, "garp"), (synack, "synack")):
        raw = kept(frame)
        assert raw is not None and raw == bytes(frame)[:96]
        p = decoded(frame)
        assert p is not None and p.kind == want
    assert kept(other) is None
    # only IPv4 VIPs asked for: an IPv6 VIP's NA is dropped
    assert kept(una(VIP6), (VIP4,)) is None
