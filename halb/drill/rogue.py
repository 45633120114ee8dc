"""The hostile host's frames: forged VRRP adverts and ARP for the VIPs (scapy), and the
small sender (halb/drill/rogue_kinds.py) puts them on the wire from a host that is not an
LB host.

The frames are built here, where halb runs, and written to a 0600 file in the rogue
host's drill folder (a VRRPv2 advert with the right password carries it in clear, so
the frames never go through argv). The sender is plain python3 with an AF_PACKET socket,
so the rogue host needs no scapy; it reads the file, deletes it, and sends every frame
once per interval until its time or its count runs out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from halb.drill.rogue_kinds import SCRIPT as SCRIPT
from halb.drill.rogue_kinds import Variant as Variant
from halb.drill.rogue_kinds import interval as interval
from halb.errors import InputError

PRIORITY = 255  # the address owner's priority: every keepalived yields to it
WRONG_PASSWORD = "halbrog"  # a PASS password no cluster of the drill uses


@dataclass(frozen=True)
class Target:
    """What the frames are forged for: the VIPs and the LB hosts' (address, MAC)."""

    vips: tuple[tuple[int, str], ...]  # (router id, address)
    lbs: tuple[tuple[str, str], ...]  # (address, MAC) of each LB host's VIP interface
    version: int  # the cluster's VRRP version
    advert_int: float
    password: str | None
    rogue_ip: str
    rogue_mac: str


def frames(variant: Variant, t: Target) -> list[bytes]:
    """The frames the rogue sends once per interval."""
    for _, addr in t.vips:
        if ipaddress.ip_address(addr).version != 4:
            raise InputError(f"the rogue faults forge IPv4 frames only; VIP {addr} is IPv6")
    if variant is Variant.ARP:
        return _arp(t)
    version = {Variant.V2: 2, Variant.V2_BADPASS: 2, Variant.V3: 3}.get(variant, t.version)
    password: str | None = t.password if version == 2 else None
    if variant is Variant.V2_BADPASS:
        password = WRONG_PASSWORD
    out: list[bytes] = []
    if variant is Variant.MCAST:
        for vrid, _ in t.vips:
            out.append(
                _advert(t, vrid, version, password, t.rogue_ip, "224.0.0.18", "01:00:5e:00:00:12")
            )
        return out
    # each LB host hears the advert from another LB host's address: a configured peer, so
    # keepalived's check_unicast_src lets it through
    for i, (dst_ip, dst_mac) in enumerate(t.lbs):
        src_ip = t.lbs[(i + 1) % len(t.lbs)][0] if len(t.lbs) > 1 else t.rogue_ip
        for vrid, _ in t.vips:
            out.append(_advert(t, vrid, version, password, src_ip, dst_ip, dst_mac))
    return out


def _advert(
    t: Target, vrid: int, version: int, password: str | None, src: str, dst: str, dst_mac: str
) -> bytes:
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRP, VRRPv3
    from scapy.packet import Packet

    addrs = [a for v, a in t.vips if v == vrid]
    ip = IP(src=src, dst=dst, ttl=255, proto=112)
    adv: Packet
    if version == 3:
        adv = VRRPv3(
            vrid=vrid, priority=PRIORITY, ipcount=len(addrs), addrlist=addrs,
            adv=max(1, round(t.advert_int * 100)),
        )  # fmt: skip
    elif password is not None:
        adv = VRRP(
            vrid=vrid, priority=PRIORITY, ipcount=len(addrs), addrlist=addrs, authtype=1,
            adv=max(1, round(t.advert_int)), auth1=_auth(password, 0), auth2=_auth(password, 4),
        )  # fmt: skip
    else:
        adv = VRRP(
            vrid=vrid, priority=PRIORITY, ipcount=len(addrs), addrlist=addrs, authtype=0,
            adv=max(1, round(t.advert_int)),
        )  # fmt: skip
    return bytes(Ether(src=t.rogue_mac, dst=dst_mac) / ip / adv)


def _auth(password: str, at: int) -> int:
    """One half of VRRPv2's 8-byte PASS field (keepalived pads the password with zeros)."""
    raw = password.encode()[:8].ljust(8, b"\0")
    return int.from_bytes(raw[at : at + 4], "big")


def _arp(t: Target) -> list[bytes]:
    from scapy.layers.l2 import ARP, Ether

    out = []
    for _, vip in t.vips:
        for op in (1, 2):  # a gratuitous request and a gratuitous reply
            out.append(
                bytes(
                    Ether(src=t.rogue_mac, dst="ff:ff:ff:ff:ff:ff")
                    / ARP(op=op, hwsrc=t.rogue_mac, psrc=vip, hwdst="ff:ff:ff:ff:ff:ff", pdst=vip)
                )
            )
    return out


def frames_file(frames: list[bytes]) -> bytes:
    """The file the sender reads: one frame a line, in hex."""
    return "".join(f.hex() + "\n" for f in frames).encode()
