"""`ss -Htlnp`: listening TCP sockets, and which of them stand in a frontend's way."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SS_LISTEN = ["ss", "-Htlnp"]


@dataclass(frozen=True)
class Listener:
    address: str  # "0.0.0.0", "::", "*", "10.0.0.5"
    port: int
    process: str | None  # first process name from `users:(("haproxy",...))`


_SS_USERS_RE = re.compile(r'users:\(\("([^"]+)"')


def parse_ss(text: str) -> list[Listener]:
    """`ss -Htlnp` (or without -p) lines -> listeners."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        # State Recv-Q Send-Q Local Peer [users]; -H drops the header, -t -l keeps LISTEN
        local = parts[3] if parts[0] in ("LISTEN", "UNCONN") else parts[2]
        addr, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        addr = addr.strip("[]").split("%", 1)[0]
        if addr.startswith("::ffff:"):
            addr = addr[7:]
        m = _SS_USERS_RE.search(line)
        out.append(Listener(addr, int(port), m.group(1) if m else None))
    return out


WILDCARDS = frozenset({"0.0.0.0", "*", "::"})


def port_conflicts(listeners: Iterable[Listener], vip: str, port: int) -> list[Listener]:
    """Listeners that stop HAProxy binding vip:port (wildcard or the VIP itself); an IPv4
    wildcard (0.0.0.0) leaves an IPv6 VIP's port free."""
    wild = WILDCARDS - {"0.0.0.0"} if ":" in vip else WILDCARDS
    return [
        listener
        for listener in listeners
        if listener.port == port and (listener.address in wild or listener.address == vip)
    ]
