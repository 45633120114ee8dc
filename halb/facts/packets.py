"""Raw packets heard on an LB host: ARP replies for a VIP and VRRP adverts.

A small stdlib-only Python helper runs on the host (AF_PACKET sockets, so no scapy is
needed there) and prints the frames it saw as hex; the parsing happens here.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

ARP_WAIT = 1.0  # seconds to collect ARP replies


@dataclass(frozen=True)
class VrrpAdvert:
    source: str
    destination: str
    version: int
    router_id: int
    priority: int
    addresses: tuple[str, ...]
    advert_int: float  # seconds
    family: int = 4


def parse_vrrp(packet: bytes) -> VrrpAdvert | None:
    """An IPv4 packet (or Ethernet frame carrying one) with protocol 112 -> advert, else None.
    An IPv6 one (next header 112, VRRPv3) too: parse_vrrp6."""
    if len(packet) >= 14 and packet[12:14] == b"\x86\xdd":
        return parse_vrrp6(packet[14:])
    if len(packet) >= 14 and packet[12:14] == b"\x08\x00" and packet[14] >> 4 == 4:
        packet = packet[14:]
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 112:
        return None
    ihl = (packet[0] & 0x0F) * 4
    src = str(ipaddress.IPv4Address(packet[12:16]))
    dst = str(ipaddress.IPv4Address(packet[16:20]))
    v = packet[ihl:]
    if len(v) < 8:
        return None
    version, kind = v[0] >> 4, v[0] & 0x0F
    if kind != 1 or version not in (2, 3):
        return None
    count = v[3]
    # v2: whole seconds in byte 5; v3: 12 bits of centiseconds
    interval = float(v[5]) if version == 2 else (struct.unpack("!H", v[4:6])[0] & 0xFFF) / 100

    if len(v) < 8 + 4 * count:
        return None
    addrs = tuple(str(ipaddress.IPv4Address(v[8 + 4 * i : 12 + 4 * i])) for i in range(count))
    return VrrpAdvert(src, dst, version, v[1], v[2], addrs, interval)


def parse_vrrp6(packet: bytes) -> VrrpAdvert | None:
    """An IPv6 packet whose next header is VRRP (112): a VRRPv3 advert with IPv6 addresses."""
    if len(packet) < 48 or packet[0] >> 4 != 6 or packet[6] != 112:
        return None
    src = str(ipaddress.IPv6Address(packet[8:24]))
    dst = str(ipaddress.IPv6Address(packet[24:40]))
    v = packet[40:]
    if v[0] >> 4 != 3 or v[0] & 0x0F != 1:
        return None
    count = v[3]
    if len(v) < 8 + 16 * count:
        return None
    addrs = tuple(str(ipaddress.IPv6Address(v[8 + 16 * i : 24 + 16 * i])) for i in range(count))
    interval = (struct.unpack("!H", v[4:6])[0] & 0xFFF) / 100
    return VrrpAdvert(src, dst, 3, v[1], v[2], addrs, interval, family=6)


@dataclass(frozen=True)
class ArpReply:
    sender_mac: str
    sender_ip: str
    target_ip: str


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_arp(frame: bytes) -> ArpReply | None:
    """An Ethernet frame carrying an ARP reply (IPv4 over Ethernet) -> reply, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 2):
        return None
    return ArpReply(
        _mac(frame[22:28]),
        str(ipaddress.IPv4Address(frame[28:32])),
        str(ipaddress.IPv4Address(frame[38:42])),
    )


def parse_hex_lines(text: str) -> list[bytes]:
    out = []
    for line in text.split():
        try:
            out.append(bytes.fromhex(line))
        except ValueError:
            continue
    return out


def parse_na(frame: bytes) -> ArpReply | None:
    """An Ethernet frame carrying an ICMPv6 neighbour advertisement -> (frame's source MAC,
    the address it advertises), else None. Reuses ArpReply: an NA answers for an address
    as an ARP reply does."""
    if len(frame) < 14 + 40 + 24 or frame[12:14] != b"\x86\xdd" or frame[14] >> 4 != 6:
        return None
    if frame[14 + 6] != 58 or frame[14 + 40] != 136:  # next header ICMPv6, type NA
        return None
    target = str(ipaddress.IPv6Address(frame[14 + 40 + 8 : 14 + 40 + 24]))
    return ArpReply(_mac(frame[6:12]), target, "")


_ARPING_RE = re.compile(r"reply from (\d+\.\d+\.\d+\.\d+) \[([0-9A-Fa-f:]{17})\]")


def parse_arping(text: str) -> list[ArpReply]:
    """iputils `arping -D` output: 'Unicast reply from 10.0.0.9 [AA:BB:..]  0.6ms'."""
    return [ArpReply(m.group(2).lower(), m.group(1), "") for m in _ARPING_RE.finditer(text)]


# The helper run on an LB host (as root). Modes:
#   arp IFACE SECONDS SRC_IP VIP[,VIP] [OTHER_IP...]  send an RFC 5227 probe for each VIP
#       (sender 0.0.0.0) and plain requests for OTHER_IPs (to name who holds a VIP by its
#       MAC); print every ARP reply frame received, as hex.
#   vrrp IFACE SECONDS [6]  print every received IPv4 frame with protocol 112, as hex;
#       with 6, IPv6 frames with next header 112 too.
#   ndp IFACE SECONDS VIP[,VIP]  send an RFC 4862 duplicate address detection probe for
#       each IPv6 VIP (a neighbour solicitation from ::, to the VIP's solicited-node
#       group); print every neighbour advertisement frame received, as hex.
PACKET_HELPER = r"""
import socket, struct, sys, time
def mac_of(ifname):
    with open("/sys/class/net/%s/address" % ifname) as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))
def arp_request(mac, sender, target):
    return (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1,
            mac, socket.inet_aton(sender), b"\0" * 6, socket.inet_aton(target)))
def capture(s, seconds, keep):
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            return
        if addr[2] != 4 and keep(data):  # 4 = PACKET_OUTGOING: our own frames
            print(data.hex(), flush=True)
def main(mode, ifname, seconds, *rest):
    seconds = float(seconds)
    if mode == "arp":
        src, vips, others = rest[0], rest[1].split(","), rest[2:]
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        s.bind((ifname, 0))
        mac = mac_of(ifname)
        keep = lambda d: len(d) >= 42 and d[12:14] == b"\x08\x06" and d[20:22] == b"\x00\x02"
        for vip in vips:
            s.send(arp_request(mac, "0.0.0.0", vip))
        for o in others:
            s.send(arp_request(mac, src, o))
        capture(s, seconds / 2, keep)
        for vip in vips:
            s.send(arp_request(mac, "0.0.0.0", vip))
        capture(s, seconds / 2, keep)
    elif mode == "vrrp":
        six = rest[:1] == ("6",)  # ETH_P_ALL: IPv4 and IPv6
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3 if six else 0x0800))
        s.bind((ifname, 0))
        # PACKET_ADD_MEMBERSHIP / PACKET_MR_ALLMULTI: a real NIC passes 224.0.0.18 up
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), 2, 0, b"")
        s.setsockopt(263, 1, mreq)
        v4 = lambda d: len(d) >= 34 and d[12:14] == b"\x08\x00" and d[23] == 112
        v6 = lambda d: six and len(d) >= 62 and d[12:14] == b"\x86\xdd" and d[20] == 112
        capture(s, seconds, lambda d: v4(d) or v6(d))
    elif mode == "ndp":
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
        s.bind((ifname, 0))
        mac = mac_of(ifname)
        keep = lambda d: len(d) >= 78 and d[12:14] == b"\x86\xdd" and d[20] == 58 and d[54] == 136
        frames = [dad_probe(mac, socket.inet_pton(socket.AF_INET6, v)) for v in rest[0].split(",")]
        for f in frames:
            s.send(f)
        capture(s, seconds / 2, keep)
        for f in frames:
            s.send(f)
        capture(s, seconds / 2, keep)
    else:
        sys.exit("unknown mode")
def dad_probe(mac, target):
    group = b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target[13:]
    icmp = struct.pack("!BBHI", 135, 0, 0, 0) + target
    pseudo = b"\0" * 16 + group + struct.pack("!I3xB", len(icmp), 58)
    data = pseudo + icmp
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    icmp = icmp[:2] + struct.pack("!H", ~total & 0xFFFF) + icmp[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + b"\0" * 16 + group
    return b"\x33\x33" + group[12:] + mac + b"\x86\xdd" + ip6 + icmp
main(*sys.argv[1:])
"""


def arp_probe_argv(iface: str, vips: Sequence[str], src: str, others: Sequence[str]) -> list[str]:
    """Probe each VIP (and ask the `others` for their MACs); replies come back as hex."""
    return [
        "python3",
        "-c",
        PACKET_HELPER,
        "arp",
        iface,
        str(ARP_WAIT),
        src,
        ",".join(vips),
        *others,
    ]


def ndp_probe_argv(iface: str, vips: Sequence[str]) -> list[str]:
    """Duplicate address detection for each IPv6 VIP; advertisements come back as hex."""
    return ["python3", "-c", PACKET_HELPER, "ndp", iface, str(ARP_WAIT), ",".join(vips)]


def vrrp_listen_argv(iface: str, seconds: float, ipv6: bool = False) -> list[str]:
    six = ["6"] if ipv6 else []
    return ["python3", "-c", PACKET_HELPER, "vrrp", iface, f"{seconds:g}", *six]


def arping_argv(iface: str, vip: str) -> list[str]:
    """iputils `arping` in DAD mode: exit 0 = nobody answered, 1 = an answer (printed)."""
    return ["arping", "-D", "-c", "2", "-w", "3", "-I", iface, vip]
