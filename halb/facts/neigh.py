"""Link-layer facts: each interface's MAC (`ip -o link show`) and the neighbour table
(`ip -o neigh show`): who a host sends an address to. Parsers, pure."""

from __future__ import annotations

import re

NEIGH_ARGV = ["ip", "-o", "neigh", "show"]
_LINK = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:.*\slink/ether\s+([0-9a-fA-F:]{17})\s")
# "10.0.0.1 dev eth0 lladdr 02:..:01 REACHABLE" (an entry being resolved has no lladdr)
_NEIGH = re.compile(r"^(\S+)\s+dev\s+(\S+)\s+(?:.*\s)?lladdr\s+([0-9a-fA-F:]{17})(?:\s+(.*))?$")
_UNUSABLE = {"FAILED", "INCOMPLETE", "NONE"}


def parse_link_macs(text: str) -> dict[str, str]:
    """Interface -> MAC of each Ethernet link in `ip -o link show`."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINK.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).lower()
    return out


def parse_neigh(text: str) -> dict[str, str]:
    """Address -> the MAC this host sends it to, from `ip -o neigh show` (entries that
    failed or are still being resolved left out)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _NEIGH.match(line.strip())
        if not m:
            continue
        states = set((m.group(4) or "").split())
        if states & _UNUSABLE:
            continue
        out[m.group(1)] = m.group(3).lower()
    return out
