"""Packet timestamps on the segment: VRRP adverts, gratuitous ARPs, unsolicited neighbour
advertisements and SYN-ACKs from a VIP.

A tiny capture agent (Python standard library only, so an LB host needs no scapy) runs on
each LB host and, when halb runs as root, on the drill's own host. It reads the VIP
interface through an AF_PACKET socket with kernel timestamps, keeps only ARP, VRRP (IPv4
protocol 112, IPv6 next header 112), neighbour advertisements for a VIP and TCP SYN-ACKs
from a VIP, and prints "TIME HEX-FRAME" lines. halb decodes the frames (`decode`, pure).

IPv6 extension headers: hop-by-hop, routing and destination options headers are skipped
to the upper-layer header, and so is a fragment header of a first fragment (a later
fragment carries no upper-layer header and is dropped), in the agent and in `decode`
alike. AH and ESP are not read: such frames are dropped (VRRPv3 has no authentication,
and neighbour discovery does not use IPsec).

Why several observers: keepalived sends its adverts unicast to the peers, and a switch
forwards a unicast frame only to its destination, so no third host sees them. Each LB host
sees the adverts it sends and the ones it receives; every host sees the broadcast
gratuitous ARPs and the unsolicited neighbour advertisements (to all nodes, ff02::1);
only the client's own host sees which MAC answered its SYNs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from halb.drill.model import Packet
from halb.transport import Transport

if TYPE_CHECKING:  # scapy is imported where frames are decoded
    from scapy.packet import Packet as ScapyPacket

# What the agent keeps, as plain functions of a frame (no socket): `keep` returns how many
# bytes of the frame to print, 0 to drop it. Run as is by the unit tests.
AGENT_FILTER = r"""
import socket
def wanted(vips):
    v4 = {socket.inet_aton(v) for v in vips if v and ":" not in v}
    return v4, {socket.inet_pton(socket.AF_INET6, v) for v in vips if ":" in v}
def upper6(data):
    # IPv6: (next header, offset) of the upper-layer header past the extension headers
    nh, off = data[20], 54
    for _ in range(8):
        if nh in (0, 43, 60) and len(data) >= off + 2:
            nh, off = data[off], off + (data[off + 1] + 1) * 8
        elif nh == 44 and len(data) >= off + 8:
            if (data[off + 2] << 8 | data[off + 3]) & 0xFFF8:
                return None, off  # a later fragment: no upper-layer header
            nh, off = data[off], off + 8
        else:
            break
    return (None, off) if nh in (0, 43, 60, 44) else (nh, off)
def keep(data, want, want6):
    et = data[12:14]
    if et == b"\x08\x06":
        return 96
    if et == b"\x08\x00" and len(data) > 34:
        proto = data[23]
        if proto == 112:
            return 96
        if proto == 6 and data[26:30] in want:
            ihl = (data[14] & 15) * 4
            flags = data[14 + ihl + 13] if len(data) > 14 + ihl + 13 else 0
            return 96 if flags & 0x12 == 0x12 else 0
    elif et == b"\x86\xdd" and len(data) > 54:
        nh, off = upper6(data)
        cut = max(96, off + 40)
        if nh == 112:
            return cut
        if nh == 58:  # a neighbour advertisement (136) whose target is a VIP
            ok = len(data) >= off + 24 and data[off] == 136 and data[off + 8:off + 24] in want6
            return cut if ok else 0
        if nh == 6 and data[22:38] in want6:
            return cut if len(data) > off + 13 and data[off + 13] & 0x12 == 0x12 else 0
    return 0
"""
AGENT = (
    AGENT_FILTER
    + r"""
import os, select, struct, sys, time
iface, limit = sys.argv[1], float(sys.argv[2])
want, want6 = wanted(sys.argv[3].split(","))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
out = sys.stdout
out.write("ready\n"); out.flush()
end = time.monotonic() + limit
fds = [s, sys.stdin]
while time.monotonic() < end:
    r, _, _ = select.select(fds, [], [], 0.5)
    if sys.stdin in r and not os.read(0, 4096):
        break
    if s not in r:
        continue
    data, anc, _, _ = s.recvmsg(2048, 64)
    cut = keep(data, want, want6)
    if not cut:
        continue
    ts = time.time()
    for level, kind, val in anc:
        if level == socket.SOL_SOCKET and kind == 35 and len(val) >= 16:
            sec, nsec = struct.unpack("qq", val[:16])
            ts = sec + nsec / 1e9
    out.write("%.6f %s\n" % (ts, data[:cut].hex()))
    out.flush()
"""
)


def agent_argv(interface: str, limit: float, vips: Sequence[str]) -> list[str]:
    return ["python3", "-c", AGENT, interface, f"{limit:g}", ",".join(vips)]


# ------------------------------------------------------------------------------ decoding


def decode(observer: str, ts: float, frame: bytes) -> Packet | None:
    """One captured frame -> a Packet, None for frames the drill does not use."""
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00" and frame[23] == 6:
        return _synack(observer, ts, frame)
    if len(frame) >= 54 and frame[12:14] == b"\x86\xdd" and frame[20] == 6:
        return _synack6(observer, ts, frame)
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether

    try:
        eth = Ether(frame)
    except Exception:
        return None
    if ARP in eth:
        arp = eth[ARP]
        if arp.psrc != arp.pdst:
            return None  # an ordinary ARP request or reply
        return Packet(ts, observer, "garp", str(arp.psrc), str(arp.hwsrc), addr=str(arp.psrc))
    if IPv6 in eth:
        return _ipv6(observer, ts, eth)
    if IP not in eth:
        return None
    ip = eth[IP]
    if ip.proto == 112:
        # VRRPv2 and v3 share the first bytes (version/type, router id, priority); scapy
        # dissects v3 only in some versions, so read them from the payload.
        body = bytes(ip.payload)
        vrid, prio = (body[1], body[2]) if len(body) >= 3 else (None, None)
        return Packet(ts, observer, "advert", str(ip.src), str(eth.src), vrid=vrid, prio=prio)
    if TCP in ip and int(ip[TCP].flags) & 0x12 == 0x12:
        return Packet(ts, observer, "synack", str(ip.src), str(eth.src), addr=str(ip.src))
    return None


def _ipv6(observer: str, ts: float, eth: ScapyPacket) -> Packet | None:
    """VRRPv3 over IPv6, an unsolicited neighbour advertisement, a SYN-ACK: past the
    hop-by-hop, routing, destination options and (first) fragment headers."""
    from scapy.layers.inet6 import (
        ICMPv6ND_NA,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrRouting,
    )

    ip = eth[IPv6]
    layer = ip
    for _ in range(8):
        nxt = layer.payload
        if isinstance(nxt, IPv6ExtHdrFragment) and nxt.offset:
            return None  # a later fragment: no upper-layer header
        if not isinstance(
            nxt, IPv6ExtHdrHopByHop | IPv6ExtHdrRouting | IPv6ExtHdrDestOpt | IPv6ExtHdrFragment
        ):
            break
        layer = nxt
    nh, body = int(layer.nh), layer.payload
    src, mac = str(ip.src), str(eth.src)
    if nh == 112:
        raw = bytes(body)  # VRRPv3: version/type, router id, priority
        vrid, prio = (raw[1], raw[2]) if len(raw) >= 3 else (None, None)
        return Packet(ts, observer, "advert", src, mac, vrid=vrid, prio=prio)
    if nh == 58 and isinstance(body, ICMPv6ND_NA):
        if body.S:
            return None  # solicited: an answer to a neighbour solicitation, no announcement
        return Packet(ts, observer, "na", src, mac, addr=str(body.tgt))
    if nh == 6:
        raw = bytes(body)
        if len(raw) > 13 and raw[13] & 0x12 == 0x12:
            return Packet(ts, observer, "synack", src, mac, addr=src)
    return None


def _synack(observer: str, ts: float, frame: bytes) -> Packet | None:
    """TCP frames are most of a capture (one SYN-ACK per probe): read the few fields
    directly instead of dissecting thousands of frames with scapy."""
    ihl = (frame[14] & 15) * 4
    flags_at = 14 + ihl + 13
    if len(frame) <= flags_at or frame[flags_at] & 0x12 != 0x12:
        return None
    src = ".".join(str(b) for b in frame[26:30])
    mac = ":".join(f"{b:02x}" for b in frame[6:12])
    return Packet(ts, observer, "synack", src, mac, addr=src)


def _synack6(observer: str, ts: float, frame: bytes) -> Packet | None:
    """The same for IPv6 without extension headers (TCP right after the fixed header)."""
    if len(frame) <= 54 + 13 or frame[54 + 13] & 0x12 != 0x12:
        return None
    src = str(ipaddress.IPv6Address(frame[22:38]))
    mac = ":".join(f"{b:02x}" for b in frame[6:12])
    return Packet(ts, observer, "synack", src, mac, addr=src)


def parse_line(observer: str, line: str) -> Packet | None:
    """One agent output line -> a Packet (None for the ready line and anything odd)."""
    parts = line.split()
    if len(parts) != 2:
        return None
    try:
        ts = float(parts[0])
        frame = bytes.fromhex(parts[1])
    except ValueError:
        return None
    return decode(observer, ts, frame)


def parse_lines(observer: str, lines: Iterable[str]) -> list[Packet]:
    return [p for p in (parse_line(observer, ln) for ln in lines) if p is not None]


# ------------------------------------------------------------------------------ running


@dataclass
class Capture:
    """A running agent; `stop()` ends it (closing its stdin) and returns the lines."""

    observer: str
    proc: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    def start_reading(self) -> None:
        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                text = raw.decode("ascii", "replace").strip()
                if text == "ready":
                    self.ready.set()
                elif text:
                    self.lines.append(text)
            self.ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 10.0) -> list[Packet]:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=timeout)
        return parse_lines(self.observer, list(self.lines))


def start_remote(t: Transport, interface: str, limit: float, vips: Sequence[str]) -> Capture:
    """The agent on an LB host, through its transport (as root)."""
    cap = Capture(t.name, t.popen(agent_argv(interface, limit, vips)))
    cap.start_reading()
    return cap


def start_local(
    observer: str, interface: str, limit: float, vips: Sequence[str], prefix: Sequence[str] = ()
) -> Capture:
    """The agent on this host (needs root); `prefix` runs it elsewhere (e.g. nsenter)."""
    proc = subprocess.Popen(
        [*prefix, *agent_argv(interface, limit, vips)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cap = Capture(observer, proc)
    cap.start_reading()
    return cap
