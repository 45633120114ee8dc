"""Packet timestamps on the segment: VRRP adverts, gratuitous ARPs, SYN-ACKs from a VIP.

A tiny capture agent (Python standard library only, so an LB host needs no scapy) runs on
each LB host and, when halb runs as root, on the drill's own host. It reads the VIP
interface through an AF_PACKET socket with kernel timestamps, keeps only ARP, IP
protocol 112 and TCP SYN-ACKs from a VIP, and prints "TIME HEX-FRAME" lines. halb decodes
the frames with scapy (`decode`, pure).

Why several observers: keepalived sends its adverts unicast to the peers, and a switch
forwards a unicast frame only to its destination, so no third host sees them. Each LB host
sees the adverts it sends and the ones it receives; every host sees the broadcast
gratuitous ARPs; only the client's own host sees which MAC answered its SYNs.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from halb.drill.model import Packet
from halb.transport import Transport

AGENT = r"""
import os, select, socket, struct, sys, time
iface, limit, vips = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
want = {socket.inet_aton(v) for v in vips if v}
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
    et = data[12:14]
    keep = et == b"\x08\x06"
    if et == b"\x08\x00" and len(data) > 34:
        proto = data[23]
        if proto == 112:
            keep = True
        elif proto == 6 and data[26:30] in want:
            ihl = (data[14] & 15) * 4
            flags = data[14 + ihl + 13] if len(data) > 14 + ihl + 13 else 0
            keep = flags & 0x12 == 0x12
    if not keep:
        continue
    ts = time.time()
    for level, kind, val in anc:
        if level == socket.SOL_SOCKET and kind == 35 and len(val) >= 16:
            sec, nsec = struct.unpack("qq", val[:16])
            ts = sec + nsec / 1e9
    out.write("%.6f %s\n" % (ts, data[:96].hex()))
    out.flush()
"""


def agent_argv(interface: str, limit: float, vips: Sequence[str]) -> list[str]:
    return ["python3", "-c", AGENT, interface, f"{limit:g}", ",".join(vips)]


# ------------------------------------------------------------------------------ decoding


def decode(observer: str, ts: float, frame: bytes) -> Packet | None:
    """One captured frame -> a Packet, None for frames the drill does not use."""
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00" and frame[23] == 6:
        return _synack(observer, ts, frame)
    from scapy.layers.inet import IP, TCP
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
