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


# How ss (iproute2) shows a wildcard listener, and the VIP family it keeps HAProxy from
# binding (tried with HAProxy 2.6 and ss 6.1, EADDRINUSE or not):
#   0.0.0.0   an IPv4 socket: IPv4 only
#   [::]      an IPv6 socket with IPV6_V6ONLY: IPv6 only
#   *         an IPv6 socket without IPV6_V6ONLY, which takes IPv4 too: both (also ss's
#             word when it cannot tell, reading /proc/net instead of sock_diag)
WILDCARDS = {4: frozenset({"0.0.0.0", "*"}), 6: frozenset({"::", "*"})}


def port_conflicts(listeners: Iterable[Listener], vip: str, port: int) -> list[Listener]:
    """Listeners that stop HAProxy binding vip:port: the VIP itself, or a wildcard of the
    VIP's family (WILDCARDS): an IPv4 wildcard leaves an IPv6 VIP's port free, a v6only
    `[::]` an IPv4 VIP's."""
    wild = WILDCARDS[6 if ":" in vip else 4]
    return [
        listener
        for listener in listeners
        if listener.port == port and (listener.address in wild or listener.address == vip)
    ]
