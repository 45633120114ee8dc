"""The lab's plan: host names, roles, addresses and namespace names (pure, no I/O).

Every lab lives in 10.250.X.0/24 where X comes from a stable hash of the lab name, so two
labs with different names normally get different ranges; a clash is detected by the
caller (see `octet_of`) and refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from halb.errors import InputError

LAB_PREFIX = "10.250"
# `--ip-family 6`: every host has fd25:250:X::N/64 instead (unique-local, same X and N);
# `dual`: it has both
LAB_PREFIX6 = "fd25:250"
IP_FAMILIES = ("4", "6", "dual")
NAME_RE = re.compile(r"^[a-z0-9]{1,12}$")
MAX_LBS = 9  # .11 .. .19
MAX_MASTERS = 9  # .21 .. .29
MAX_NODES = 99  # .31 .. .129
SWITCH = "sw"
TASKBOX = "taskbox"
BRIDGE = "br0"
HOST_IFACE = "eth0"
SUDO_USER = "halbops"  # the non-root login of sudo hosts


class Init(StrEnum):
    """How the lab's hosts run their daemons: halb's pid-file supervisor, or systemd as
    PID 1 in a private copy-on-write root (every host but the taskbox)."""

    PLAIN = "plain"
    SYSTEMD = "systemd"


class LabRole(StrEnum):
    TASKBOX = "taskbox"
    LB = "lb"
    MASTER = "master"
    NODE = "node"


@dataclass(frozen=True)
class LabHost:
    name: str
    role: LabRole
    address: str
    netns: str
    password: bool  # logs in with the lab password instead of the key
    # Logs in as this user (not root) by password and becomes root through sudo with it.
    sudo_user: str | None = None
    init: Init = Init.PLAIN
    address6: str | None = None  # `--ip-family dual`


@dataclass(frozen=True)
class LabPlan:
    name: str
    octet: int
    hosts: tuple[LabHost, ...]
    ip_family: str = "4"  # "dual": IPv6 addresses and VIPs beside the IPv4 ones

    @property
    def subnet(self) -> str:
        return subnet6_of(self.octet) if self.ip_family == "6" else subnet_of(self.octet)

    @property
    def prefix_len(self) -> int:
        return 64 if self.ip_family == "6" else 24

    @property
    def vip_internal(self) -> str:
        return self._vips["internal"]

    @property
    def vip_external(self) -> str:
        return self._vips["external"]

    @property
    def _vips(self) -> dict[str, str]:
        if self.ip_family == "6":
            return {
                "internal": address6_in(self.octet, 253),
                "external": address6_in(self.octet, 254),
            }
        return vips_of(self.octet)

    @property
    def ipv6_subnet(self) -> str | None:
        """The lab's IPv6 range (`--ip-family 6` or `dual`), else None."""
        return subnet6_of(self.octet) if self.ip_family != "4" else None

    @property
    def subnet6(self) -> str | None:
        return subnet6_of(self.octet) if self.ip_family == "dual" else None

    @property
    def vip_internal6(self) -> str | None:
        return address6_in(self.octet, 253) if self.ip_family == "dual" else None

    @property
    def vip_external6(self) -> str | None:
        return address6_in(self.octet, 254) if self.ip_family == "dual" else None

    @property
    def switch_netns(self) -> str:
        return switch_netns(self.name)

    @property
    def cluster(self) -> str:
        return f"halb-lab-{self.name}"

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        valid = ", ".join(h.name for h in self.hosts)
        raise InputError(f"lab {self.name}: no host {name!r} (hosts: {valid})")

    def by_role(self, role: LabRole) -> tuple[LabHost, ...]:
        return tuple(h for h in self.hosts if h.role is role)

    @property
    def colocated(self) -> bool:
        """No LB hosts: the masters carry the VIPs and run HAProxy beside the apiserver,
        as in the KubeSphere guide's six machines (no [lb] group)."""
        return not self.by_role(LabRole.LB)

    @property
    def init(self) -> Init:
        return Init.SYSTEMD if any(h.init is Init.SYSTEMD for h in self.hosts) else Init.PLAIN

    @property
    def inventory_hosts(self) -> tuple[LabHost, ...]:
        """Every host but the taskbox: the machines of the cluster."""
        return tuple(h for h in self.hosts if h.role is not LabRole.TASKBOX)


def subnet_of(octet: int) -> str:
    return f"{LAB_PREFIX}.{octet}.0/24"


def address_in(octet: int, last: int) -> str:
    return f"{LAB_PREFIX}.{octet}.{last}"


def subnet6_of(octet: int) -> str:
    return f"{LAB_PREFIX6}:{octet}::/64"


def address6_in(octet: int, last: int) -> str:
    """The IPv6 address of a lab host: the IPv4 one's octet and last number, read as hex
    groups (10.250.93.11 -> fd25:250:93::11)."""
    return f"{LAB_PREFIX6}:{octet}::{last}"


def vips_of(octet: int) -> dict[str, str]:
    """VIP role -> address: the two lab VIPs sit at the top of the range."""
    return {"internal": address_in(octet, 253), "external": address_in(octet, 254)}


def octet_in(address: str) -> int | None:
    """The range octet of a lab address; None for any other address."""
    parts = address.split(".")
    if len(parts) == 4 and address.startswith(f"{LAB_PREFIX}.") and parts[2].isdigit():
        return int(parts[2])
    return None


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(
            f"lab name {name!r}: use 1-12 lower-case letters or digits "
            "(it becomes part of namespace names)"
        )
    return name


def octet_of(name: str) -> int:
    """Third octet of the lab range, stable across runs and machines (1..254)."""
    digest = hashlib.sha256(check_name(name).encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % 254


def netns_name(lab: str, host: str) -> str:
    return f"halb-{lab}-{host}"


def switch_netns(lab: str) -> str:
    return netns_name(lab, SWITCH)


def lab_of_netns(ns: str) -> tuple[str, str] | None:
    """`halb-NAME-HOST` -> (NAME, HOST); None for namespaces that are not a lab's."""
    m = re.match(r"^halb-([a-z0-9]{1,12})-([a-z0-9]+)$", ns)
    return (m.group(1), m.group(2)) if m else None


def default_password_hosts(lbs: int, nodes: int) -> frozenset[str]:
    """The second LB and the first node log in with a password, the rest with the key."""
    out = set()
    if lbs >= 2:
        out.add("lb2")
    if nodes >= 1:
        out.add("node1")
    return frozenset(out)


def default_sudo_hosts(lbs: int) -> frozenset[str]:
    """The first LB logs in as a non-root user and becomes root with sudo and a password."""
    return frozenset({"lb1"}) if lbs >= 1 else frozenset()


def plan(
    name: str,
    lbs: int = 2,
    masters: int = 3,
    nodes: int = 3,
    octet: int | None = None,
    password_hosts: frozenset[str] | None = None,
    sudo_hosts: frozenset[str] | None = None,
    init: Init = Init.PLAIN,
    ip_family: str = "4",
) -> LabPlan:
    check_name(name)
    if ip_family not in IP_FAMILIES:
        raise InputError(f"--ip-family {ip_family!r}: use one of {', '.join(IP_FAMILIES)}")
    for what, n, lo, hi in (
        ("--lbs", lbs, 0, MAX_LBS),  # 0: the masters are the LB hosts
        ("--masters", masters, 1, MAX_MASTERS),
        ("--nodes", nodes, 0, MAX_NODES),
    ):
        if not lo <= n <= hi:
            raise InputError(f"{what} {n}: must be between {lo} and {hi}")
    x = octet_of(name) if octet is None else octet
    if not 1 <= x <= 254:
        raise InputError(f"lab range octet {x}: must be between 1 and 254")
    pw = default_password_hosts(lbs, nodes) if password_hosts is None else password_hosts
    su = default_sudo_hosts(lbs) if sudo_hosts is None else sudo_hosts
    both = pw & su
    if both:
        raise InputError(f"hosts both root-password and sudo hosts: {', '.join(sorted(both))}")

    def host(hname: str, role: LabRole, last: int) -> LabHost:
        return LabHost(
            name=hname,
            role=role,
            address=address6_in(x, last) if ip_family == "6" else f"{LAB_PREFIX}.{x}.{last}",
            netns=netns_name(name, hname),
            password=hname in pw,
            sudo_user=SUDO_USER if hname in su else None,
            init=Init.PLAIN if role is LabRole.TASKBOX else init,
            address6=address6_in(x, last) if ip_family == "dual" else None,
        )

    hosts = [host(TASKBOX, LabRole.TASKBOX, 2)]
    hosts += [host(f"lb{i}", LabRole.LB, 10 + i) for i in range(1, lbs + 1)]
    hosts += [host(f"master{i}", LabRole.MASTER, 20 + i) for i in range(1, masters + 1)]
    hosts += [host(f"node{i}", LabRole.NODE, 30 + i) for i in range(1, nodes + 1)]
    for what, names in (("password", pw), ("sudo", su)):
        unknown = names - {h.name for h in hosts}
        if unknown:
            raise InputError(f"{what} hosts not in the lab: {', '.join(sorted(unknown))}")
    return LabPlan(name=name, octet=x, hosts=tuple(hosts), ip_family=ip_family)
