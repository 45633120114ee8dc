"""`ip -o addr` and `ip -o link`: the commands and the parsers of their output."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a parameter's type only: this module runs nothing itself
    from halb.transport import Transport

IP_ADDR = ["ip", "-o", "addr", "show"]
IP_ADDR_V4 = ["ip", "-o", "-4", "addr", "show"]
IP_LINK = ["ip", "-o", "link", "show"]


@dataclass(frozen=True)
class IfAddr:
    ifname: str
    family: str  # "inet" | "inet6"
    address: str
    prefixlen: int
    label: str  # the address label (keepalived's "eth0:halb0"), else the ifname

    @property
    def interface_ip(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}")

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return self.interface_ip.network


_IP_ADDR = re.compile(
    r"^\d+:\s+(?P<ifname>[^\s@]+)(?:@\S+)?\s+(?P<family>inet6?)\s+"
    r"(?P<addr>[0-9a-fA-F.:]+)(?:/(?P<plen>\d+))?(?P<rest>.*)$"
)


def parse_ip_addr(text: str) -> tuple[IfAddr, ...]:
    """Parse `ip -o addr show` (one address per line)."""
    out: list[IfAddr] = []
    for line in text.splitlines():
        m = _IP_ADDR.match(line.strip())
        if not m:
            continue
        family = m["family"]
        plen = int(m["plen"]) if m["plen"] else (32 if family == "inet" else 128)
        # the label is the last word before the "\" that separates the lifetimes
        rest = m["rest"].split("\\", 1)[0].split()
        label = rest[-1] if rest and not rest[-1].isdigit() and rest[-1] != "noprefixroute" else ""
        if not label or label in ("global", "host", "link", "dynamic", "secondary"):
            label = m["ifname"]
        out.append(IfAddr(m["ifname"], family, m["addr"], plen, label))
    return tuple(out)


def ipv4(addrs: Iterable[IfAddr]) -> list[IfAddr]:
    return [a for a in addrs if a.family == "inet"]


_LINK_RE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@[^:\s]+)?:\s")


def parse_ip_link(text: str) -> list[str]:
    """Interface names from `ip -o link show`."""
    return [m.group(1) for line in text.splitlines() if (m := _LINK_RE.match(line.strip()))]


def unicast(addrs: Iterable[IfAddr]) -> list[IfAddr]:
    """IPv4 addresses and IPv6 ones but link-local (fe80::/10 holds no VIP)."""
    return [a for a in addrs if a.family == "inet" or not a.interface_ip.ip.is_link_local]


def subnet_for(vip: str, addrs: Sequence[IfAddr], interface: str) -> IfAddr | None:
    """The address on `interface` whose subnet holds the VIP (the VIP itself excluded), of
    the VIP's family."""
    ip = ipaddress.ip_address(vip)
    family = "inet" if ip.version == 4 else "inet6"
    for a in addrs:
        if a.family != family or a.ifname != interface or a.address == vip:
            continue
        if ip in a.network:
            return a
    return None


def read_addrs(t: Transport, timeout: float = 30) -> tuple[IfAddr, ...] | None:
    """The host's addresses through the transport it is given (`ip -o addr`); None when
    the command failed. Who holds a VIP is `holders` of these, everywhere halb asks."""
    res = t.run(IP_ADDR, timeout=timeout)
    return parse_ip_addr(res.out) if res.ok else None


def holders(addrs: Mapping[str, Iterable[IfAddr]], vips: Mapping[str, str]) -> dict[str, list[str]]:
    """VIP name -> hosts that have its address configured. vips: name -> address."""
    out: dict[str, list[str]] = {name: [] for name in vips}
    for host, have in addrs.items():
        mine = {a.address for a in have}
        for name, address in vips.items():
            if address in mine:
                out[name].append(host)
    return out
