"""Preflight: network and host checks on every LB host before anything is deployed.

Nothing changes on any host (unless `open_firewall`). Every remote command runs through a
transport; every answer goes through a pure parser below, tested on captured text and
bytes. `run_preflight` is the edge: it runs the hosts in parallel and returns records;
`exit_status` turns them into 0 / 1 / 2.

Raw packets (ARP probe, VRRP listen) go through a small stdlib-only Python helper run on
the LB host (AF_PACKET sockets, so no scapy needed there); it prints the frames it saw as
hex and the parsing happens here.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
import shlex
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from halb import status
from halb.errors import ExitStatus, TransportError

if TYPE_CHECKING:
    from halb.inventory import Host
    from halb.spec import Cluster
    from halb.transport import Transport

JSON_VERSION = 1
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
ARP_WAIT = 1.0  # seconds to collect ARP replies
CMD_TIMEOUT = 20.0


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    check: str  # ssh, sudo, interface, vip-arp, vrrp, ports, firewall
    host: str  # the host the finding is about (may be a non-LB host that holds the VIP)
    level: Level
    message: str
    # A failure caused by the input or the environment (foreign VRRP on our router id, VIP
    # already held, missing interface, port taken): exit 2 rather than 1.
    bad_input: bool = False


def exit_status(results: Iterable[CheckResult]) -> ExitStatus:
    """2 if a failure is bad input/environment, else 1 if anything failed, else 0."""
    fails = [r for r in results if r.level is Level.FAIL]
    if any(r.bad_input for r in fails):
        return ExitStatus.BAD_INPUT
    return ExitStatus.CHECK_FAILED if fails else ExitStatus.OK


def document(results: Sequence[CheckResult]) -> dict[str, Any]:
    status = exit_status(results)
    return {
        "version": JSON_VERSION,
        "ok": status == ExitStatus.OK,
        "exit_status": int(status),
        "checks": [
            {
                "check": r.check,
                "host": r.host,
                "level": str(r.level),
                "message": r.message,
                "bad_input": r.bad_input,
            }
            for r in results
        ],
    }


# --------------------------------------------------------------------------- ip addr / link


@dataclass(frozen=True)
class IfAddr:
    interface: str
    interface_ip: ipaddress.IPv4Interface

    @property
    def address(self) -> str:
        return str(self.interface_ip.ip)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self.interface_ip.network


_LINK_RE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@[^:\s]+)?:\s")


def parse_ip_addr(text: str) -> list[IfAddr]:
    """IPv4 lines of `ip -o -4 addr show` (or `ip -o addr`; inet6 lines are skipped)."""
    return [
        IfAddr(a.ifname, ipaddress.IPv4Interface(f"{a.address}/{a.prefixlen}"))
        for a in status.parse_ip_addr(text)
        if a.family == "inet"
    ]


def parse_ip_link(text: str) -> list[str]:
    """Interface names from `ip -o link show`."""
    return [m.group(1) for line in text.splitlines() if (m := _LINK_RE.match(line.strip()))]


def subnet_for(vip: str, addrs: Sequence[IfAddr], interface: str) -> IfAddr | None:
    """The address on `interface` whose subnet holds the VIP (the VIP itself excluded)."""
    ip = ipaddress.IPv4Address(vip)
    for a in addrs:
        if a.interface == interface and ip in a.network and a.interface_ip.ip != ip:
            return a
    return None


# --------------------------------------------------------------------------- ss


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
    """Listeners that stop HAProxy binding vip:port (wildcard or the VIP itself)."""
    return [
        listener
        for listener in listeners
        if listener.port == port and (listener.address in WILDCARDS or listener.address == vip)
    ]


# --------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class VrrpAdvert:
    source: str
    destination: str
    version: int
    router_id: int
    priority: int
    addresses: tuple[str, ...]
    advert_int: float  # seconds


def parse_vrrp(packet: bytes) -> VrrpAdvert | None:
    """An IPv4 packet (or Ethernet frame carrying one) with protocol 112 -> advert, else None."""
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


_ARPING_RE = re.compile(r"reply from (\d+\.\d+\.\d+\.\d+) \[([0-9A-Fa-f:]{17})\]")


def parse_arping(text: str) -> list[ArpReply]:
    """iputils `arping -D` output: 'Unicast reply from 10.0.0.9 [AA:BB:..]  0.6ms'."""
    return [ArpReply(m.group(2).lower(), m.group(1), "") for m in _ARPING_RE.finditer(text)]


# The helper run on an LB host (as root). Modes:
#   arp IFACE SECONDS SRC_IP VIP[,VIP] [OTHER_IP...]  send an RFC 5227 probe for each VIP
#       (sender 0.0.0.0) and plain requests for OTHER_IPs (to name who holds a VIP by its
#       MAC); print every ARP reply frame received, as hex.
#   vrrp IFACE SECONDS  print every received IPv4 frame with protocol 112, as hex.
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
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        s.bind((ifname, 0))
        # PACKET_ADD_MEMBERSHIP / PACKET_MR_ALLMULTI: a real NIC passes 224.0.0.18 up
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), 2, 0, b"")
        s.setsockopt(263, 1, mreq)
        capture(s, seconds, lambda d: len(d) >= 34 and d[12:14] == b"\x08\x00" and d[23] == 112)
    else:
        sys.exit("unknown mode")
main(*sys.argv[1:])
"""


# --------------------------------------------------------------------------- firewall


@dataclass(frozen=True)
class Verdict:
    """What a host firewall does to a VRRP packet from a peer."""

    drops: bool
    certain: bool
    where: str  # "iptables INPUT policy DROP", "nft inet filter input: ip protocol vrrp drop"
    # nft chains that would need an accept rule: (family, table, chain)
    nft_chains: tuple[tuple[str, str, str], ...] = ()


@dataclass
class _IptChain:
    policy: str = "-"
    rules: list[list[str]] = field(default_factory=list)


def parse_iptables_save(text: str) -> dict[str, dict[str, _IptChain]]:
    """`iptables-save` -> {table: {chain: (policy, [rule argv...])}}."""
    tables: dict[str, dict[str, _IptChain]] = {}
    table: dict[str, _IptChain] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {})
        elif table is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            table.setdefault(name, _IptChain()).policy = policy
        elif line.startswith("-A "):
            try:
                argv = shlex.split(line)
            except ValueError:
                continue
            table.setdefault(argv[1], _IptChain()).rules.append(argv[2:])
    return tables


_VRRP_PROTOS = {"112", "vrrp"}
_HARMLESS_MATCHES = {"-m", "comment", "--comment"}


def _ipt_match(rule: list[str], peer: str, iface: str) -> tuple[bool, bool]:
    """Does the rule match a VRRP packet from peer on iface? (matches, certain)."""
    certain = True
    i = 0
    while i < len(rule):
        neg = rule[i] == "!"
        if neg:
            i += 1
        opt = rule[i] if i < len(rule) else ""
        val = rule[i + 1] if i + 1 < len(rule) else ""
        if opt in ("-j", "-g", "--jump", "--goto"):
            i += 2
            continue
        if opt in ("-p", "--protocol"):
            hit = val.lower() in _VRRP_PROTOS or val.lower() == "all"
        elif opt in ("-s", "--source"):
            try:
                hit = any(
                    ipaddress.IPv4Address(peer) in ipaddress.IPv4Network(n, strict=False)
                    for n in val.split(",")
                )
            except ValueError:
                hit, certain = True, False
        elif opt in ("-i", "--in-interface"):
            hit = val == iface or (val.endswith("+") and iface.startswith(val[:-1]))
        elif (opt == "-m" and val == "comment") or opt == "--comment":
            i += 2
            continue
        elif opt.startswith("-"):
            # any other match (conntrack state, addrtype, set ...): cannot evaluate
            certain = False
            i += 2 if val and not val.startswith("-") else 1
            continue
        else:
            i += 1
            continue
        if hit == neg:
            return False, True
        i += 2
    return True, certain


def _names_vrrp(rule: list[str]) -> bool:
    return any(
        a in ("-p", "--protocol") and b.lower() in _VRRP_PROTOS for a, b in itertools.pairwise(rule)
    )


def _ipt_target(rule: list[str]) -> str:
    for j, tok in enumerate(rule):
        if tok in ("-j", "--jump", "-g", "--goto") and j + 1 < len(rule):
            return rule[j + 1]
    return ""


def iptables_verdict(
    tables: Mapping[str, Mapping[str, _IptChain]], peer: str, iface: str
) -> Verdict | None:
    """Walk filter/INPUT (following user chains) for a VRRP packet; None if no filter table."""
    chains = tables.get("filter")
    if not chains or "INPUT" not in chains:
        return None

    def walk(name: str, depth: int) -> tuple[str, bool, str] | None:
        chain = chains.get(name)
        if chain is None or depth > 8:
            return None
        for rule in chain.rules:
            matches, certain = _ipt_match(rule, peer, iface)
            if not matches:
                continue
            target = _ipt_target(rule)
            where = f"iptables {name}: -A {name} {' '.join(rule)}"
            if target in ("ACCEPT",) and certain:
                return "accept", True, where
            if target in ("DROP", "REJECT"):
                if certain:
                    return "drop", True, where
                # e.g. `-m conntrack --ctstate INVALID -j DROP`: only worth a warning when
                # it names VRRP itself.
                if _names_vrrp(rule):
                    return "drop", False, where
            if target == "RETURN" and certain:
                return None
            if target in chains and target != name:
                sub = walk(target, depth + 1)
                if sub is not None and (sub[1] or sub[0] == "drop"):
                    return sub
        return None

    found = walk("INPUT", 0)
    if found is not None:
        verdict, certain, where = found
        return Verdict(verdict == "drop", certain, where)
    policy = chains["INPUT"].policy
    return Verdict(policy == "DROP", True, f"iptables INPUT policy {policy}")


@dataclass
class _NftChain:
    family: str
    table: str
    name: str
    hook: str = ""
    policy: str = "accept"
    rules: list[str] = field(default_factory=list)


def parse_nft_ruleset(text: str) -> list[_NftChain]:
    """`nft list ruleset` -> chains with hook, policy and rule lines (text)."""
    chains: list[_NftChain] = []
    family = table = ""
    current: _NftChain | None = None
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if depth == 0 and line.startswith("table "):
            parts = line.split()
            family, table = (parts[1], parts[2]) if len(parts) >= 4 else ("ip", parts[1])
        elif depth == 1 and line.startswith("chain "):
            current = _NftChain(family, table, line.split()[1])
            chains.append(current)
        elif current is not None and depth == 2 and line.startswith("type "):
            m = re.search(r"hook (\w+)", line)
            current.hook = m.group(1) if m else ""
            p = re.search(r"policy (\w+)", line)
            if p:
                current.policy = p.group(1)
        elif current is not None and depth == 2 and line != "}":
            current.rules.append(line)
        depth += line.count("{") - line.count("}")
        if depth <= 1:
            current = None if depth < 2 else current
    return chains


_NFT_VERDICT_RE = re.compile(r"\b(accept|drop|reject)\b")
_NFT_PROTO_RE = re.compile(r"\b(?:ip protocol|meta l4proto)\s+(\{[^}]*\}|\S+)")
_NFT_SADDR_RE = re.compile(r"\bip saddr\s+(!=\s*)?(\S+)")
_NFT_IIF_RE = re.compile(r"\biifname\s+(!=\s*)?\"?([^\"\s]+)\"?")
_NFT_COMMENT = re.compile(r'\bcomment\s+"[^"]*"')
_NFT_KNOWN = re.compile(
    r"\b(ip protocol|meta l4proto)\s+(\{[^}]*\}|\S+)|\bip saddr\s+(!=\s*)?\S+|"
    r"\biifname\s+(!=\s*)?\S+|\bcounter(\s+packets \d+ bytes \d+)?|"
    r"\b(accept|drop|reject)(\s+with\s+.*)?$|\blog\b.*"
)


def _nft_rule_match(rule: str, peer: str, iface: str) -> tuple[bool, bool]:
    m = _NFT_PROTO_RE.search(rule)
    if m:
        protos = {p.strip() for p in m.group(1).strip("{}").split(",")}
        if not protos & _VRRP_PROTOS:
            return False, True
    m = _NFT_SADDR_RE.search(rule)
    if m:
        try:
            inside = ipaddress.IPv4Address(peer) in ipaddress.IPv4Network(m.group(2), strict=False)
        except ValueError:
            return True, False
        if inside == bool(m.group(1)):
            return False, True
    m = _NFT_IIF_RE.search(rule)
    if m:
        pat = m.group(2)
        hit = pat == iface or (pat.endswith("*") and iface.startswith(pat[:-1]))
        if hit == bool(m.group(1)):
            return False, True
    leftover = _NFT_KNOWN.sub("", _NFT_COMMENT.sub("", rule).strip()).strip()
    return True, not leftover


def nft_verdict(chains: Sequence[_NftChain], peer: str, iface: str) -> Verdict | None:
    """Every input-hook chain must let the packet through; None when there is none."""
    base = [c for c in chains if c.hook == "input" and c.family in ("ip", "inet")]
    if not base:
        return None
    worst: Verdict | None = None
    blocking: list[tuple[str, str, str]] = []
    for c in base:
        name = f"nft {c.family} {c.table} {c.name}"
        verdict: Verdict | None = None
        for rule in c.rules:
            v = _NFT_VERDICT_RE.search(rule)
            if v is None:
                continue
            matches, certain = _nft_rule_match(rule, peer, iface)
            if not matches:
                continue
            if v.group(1) == "accept" and certain:
                verdict = Verdict(False, True, f"{name}: {rule}")
                break
            if v.group(1) in ("drop", "reject") and (certain or _NFT_PROTO_RE.search(rule)):
                verdict = Verdict(True, certain, f"{name}: {rule}")
                break
        if verdict is None:
            verdict = Verdict(c.policy == "drop", True, f"{name} policy {c.policy}")
        if verdict.drops:
            blocking.append((c.family, c.table, c.name))
        if worst is None or (verdict.drops and (not worst.drops or verdict.certain)):
            worst = verdict
    assert worst is not None
    return Verdict(worst.drops, worst.certain, worst.where, tuple(blocking))


def parse_firewalld(text: str) -> tuple[set[str], list[str]]:
    """`firewall-cmd --list-all` -> (protocols, rich rules)."""
    protocols: set[str] = set()
    rich: list[str] = []
    in_rich = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("protocols:"):
            protocols = set(line.split(":", 1)[1].split())
            in_rich = False
        elif line.startswith("rich rules:"):
            in_rich = True
        elif in_rich and line.startswith("rule"):
            rich.append(line)
        elif ":" in line:
            in_rich = False
    return protocols, rich


def firewalld_allows_vrrp(protocols: set[str], rich: Sequence[str], peer: str) -> bool:
    if "vrrp" in protocols or "112" in protocols:
        return True
    for r in rich:
        if re.search(r'protocol value="?(vrrp|112)"?', r) and "accept" in r:
            m = re.search(r'source address="?([\d./]+)"?', r)
            if m is None or ipaddress.IPv4Address(peer) in ipaddress.IPv4Network(
                m.group(1), strict=False
            ):
                return True
    return False


# --------------------------------------------------------------------------- decisions (pure)


def interface_results(
    host: str,
    iface: str,
    links: Sequence[str],
    addrs: Sequence[IfAddr],
    vips: Sequence[str],
    vip_configured: Mapping[str, bool],
) -> list[CheckResult]:
    """Interface present, each VIP inside its subnet, and who holds the VIP on this host."""
    if iface not in links:
        have = ", ".join(links) or "none"
        return [
            CheckResult(
                "interface",
                host,
                Level.FAIL,
                f"interface {iface} not found on {host} (interfaces: {have})",
                bad_input=True,
            )
        ]
    out = []
    for vip in vips:
        net = subnet_for(vip, addrs, iface)
        if net is None:
            have = ", ".join(str(a.interface_ip) for a in addrs if a.interface == iface)
            out.append(
                CheckResult(
                    "interface",
                    host,
                    Level.FAIL,
                    f"VIP {vip} is not inside any subnet of {iface} on {host} "
                    f"({have or 'no IPv4 address'})",
                    bad_input=True,
                )
            )
        else:
            out.append(
                CheckResult(
                    "interface",
                    host,
                    Level.OK,
                    f"{iface} {net.interface_ip} holds VIP {vip} in its subnet",
                )
            )
        if any(a.address == vip for a in addrs):
            if vip_configured.get(vip):
                out.append(
                    CheckResult(
                        "vip-holder",
                        host,
                        Level.OK,
                        f"{host} holds VIP {vip}: its keepalived config names it (deployed)",
                    )
                )
            else:
                out.append(
                    CheckResult(
                        "vip-holder",
                        host,
                        Level.FAIL,
                        f"{host} already holds VIP {vip} on "
                        f"{next(a.interface for a in addrs if a.address == vip)} and no keepalived "
                        "config of ours names it: remove the address or choose another VIP",
                        bad_input=True,
                    )
                )
    return out


def arp_results(
    vip: str,
    heard: Mapping[str, Sequence[ArpReply]],
    names: Mapping[str, str],
    lb_macs: Mapping[str, str],
) -> list[CheckResult]:
    """Decide from the ARP replies each LB host heard for `vip`.

    heard: prober -> replies; names: address -> host name; lb_macs: MAC -> LB host.
    """
    probers = ", ".join(sorted(heard))
    replies = [r for rs in heard.values() for r in rs]
    owners = sorted({r.sender_mac for r in replies if r.sender_ip == vip})
    # An LB host answering for the VIP is judged by the interface check (its config).
    foreign = [m for m in owners if m not in lb_macs]
    if not foreign:
        return [CheckResult("vip-arp", probers, Level.OK, f"no other host answers ARP for {vip}")]
    mac_to_ip = {r.sender_mac: r.sender_ip for r in replies if r.sender_ip != vip}
    out = []
    for mac in foreign:
        ip = mac_to_ip.get(mac)
        host = names.get(ip, ip) if ip else None
        who = f"{host} ({ip}, {mac})" if host and ip else f"host with MAC {mac}"
        out.append(
            CheckResult(
                "vip-arp",
                host or mac,
                Level.FAIL,
                f"VIP {vip} is already in use: {who} answers ARP for it (heard from {probers})",
                bad_input=True,
            )
        )
    return out


def vrrp_results(
    heard: Mapping[str, Sequence[VrrpAdvert]],
    router_ids: Mapping[int, tuple[str, str]],
    lb_addresses: Mapping[str, str],
    names: Mapping[str, str],
    seconds: float,
) -> list[CheckResult]:
    """heard: LB host -> adverts it received. router_ids: our id -> (VIP name, address)."""
    by_source: dict[tuple[int, str], tuple[VrrpAdvert, list[str]]] = {}
    for listener, adverts in heard.items():
        for a in adverts:
            entry = by_source.setdefault((a.router_id, a.source), (a, []))
            if listener not in entry[1]:
                entry[1].append(listener)
    out: list[CheckResult] = []
    others: set[int] = set()
    for (rid, src), (a, listeners) in sorted(by_source.items()):
        if rid not in router_ids:
            others.add(rid)
            continue
        vip_name, vip = router_ids[rid]
        host = lb_addresses.get(src) or names.get(src) or src
        if src in lb_addresses and vip in a.addresses:
            out.append(
                CheckResult(
                    "vrrp",
                    host,
                    Level.OK,
                    f"router id {rid}: adverts from {host} carry VIP {vip} (our keepalived)",
                )
            )
            continue
        out.append(
            CheckResult(
                "vrrp",
                host,
                Level.FAIL,
                f"router id {rid} is already in use: {host} ({src}) sends VRRPv{a.version} adverts "
                f"(priority {a.priority}, addresses {', '.join(a.addresses) or 'none'}), heard on "
                f"{', '.join(sorted(listeners))}: choose another vips.{vip_name}.router_id",
                bad_input=True,
            )
        )
    if not any(r.level is Level.FAIL for r in out):
        ids = ", ".join(str(i) for i in sorted(router_ids))
        extra = (
            f"; other routers heard: ids {', '.join(map(str, sorted(others)))}" if others else ""
        )
        where = ", ".join(sorted(heard)) or "no host"
        out.append(
            CheckResult(
                "vrrp",
                where,
                Level.OK,
                f"no foreign VRRP adverts for router id {ids} in {seconds:g} s{extra}",
            )
        )
    return out


def port_results(
    host: str,
    listeners: Sequence[Listener],
    frontends: Sequence[tuple[str, str, int]],
) -> list[CheckResult]:
    """frontends: (name, vip, port)."""
    out = []
    for name, vip, port in frontends:
        taken = [x for x in port_conflicts(listeners, vip, port) if x.process != "haproxy"]
        if not taken:
            ours = any(x.process == "haproxy" for x in port_conflicts(listeners, vip, port))
            what = "bound by our haproxy" if ours else "free"
            out.append(CheckResult("ports", host, Level.OK, f"{name} {vip}:{port} {what}"))
            continue
        x = taken[0]
        who = x.process or "a process"
        where = f"{x.address}:{x.port}"
        if x.process == "kube-apiserver" or (port == 6443 and x.process in (None, "")):
            hint = (
                " (a co-located apiserver?): use another frontend port, e.g. "
                f"frontends.{name}.port: 8443, or bind the apiserver to the host address"
            )
        else:
            hint = ": stop it or choose another frontends." + f"{name}.port"
        if x.process == "kube-apiserver":
            hint = hint.replace(" (a co-located apiserver?)", " (co-located master)")
        out.append(
            CheckResult(
                "ports",
                host,
                Level.FAIL,
                f"{who} on {host} already listens on {where}, so HAProxy cannot bind "
                f"{vip}:{port}{hint}",
                bad_input=True,
            )
        )
    return out


# --------------------------------------------------------------------------- the run (edge)


@dataclass(frozen=True)
class _HostFacts:
    """What one LB host told us (collected in parallel, judged afterwards)."""

    host: str
    results: tuple[CheckResult, ...]
    arp: Mapping[str, tuple[ArpReply, ...]] = field(default_factory=dict)
    vrrp: tuple[VrrpAdvert, ...] = ()
    mac: str | None = None
    reachable: bool = False


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class _HostCheck:
    def __init__(
        self, cluster: Cluster, host: Host, transport: Transport, open_firewall: bool
    ) -> None:
        self.c = cluster
        self.h = host
        self.t = transport
        self.open_firewall = open_firewall
        self.out: list[CheckResult] = []
        # Started once the host answered, so it overlaps the other checks.
        self.start_listen: Callable[[], Future[tuple[VrrpAdvert, ...] | None]] | None = None
        self.heard: Future[tuple[VrrpAdvert, ...] | None] | None = None

    def add(self, check: str, level: Level, message: str, bad_input: bool = False) -> None:
        self.out.append(CheckResult(check, self.h.name, level, message, bad_input))

    def sh(self, argv: Sequence[str], timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
        r = self.t.run(argv, timeout=timeout)
        return r.rc, r.out, r.err

    def run(self) -> _HostFacts:
        try:
            return self._run()
        except TransportError as e:
            self.add("ssh", Level.FAIL, f"cannot run commands: {e}")
            return _HostFacts(self.h.name, tuple(self.out))

    def _run(self) -> _HostFacts:
        rc, _, err = self.sh(["true"])
        self.add("ssh", Level.OK, f"connected to {self.h.ssh_address}")
        mode = getattr(getattr(self.t, "privilege", None), "mode", "none")
        if rc != 0:
            self.add(
                "sudo",
                Level.FAIL,
                f"cannot become root on {self.h.name}: {_first_line(err) or f'exit {rc}'}",
            )
            return _HostFacts(self.h.name, tuple(self.out), reachable=True)
        if self.start_listen is not None:
            self.heard = self.start_listen()
        how = {"none": "running as root", "sudo": "sudo -n", "sudo-password": "sudo with password"}
        self.add("sudo", Level.OK, f"root: {how.get(mode, mode)}")

        ifaces = sorted({v.interface for v in self.c.vips})
        _, link_text, _ = self.sh(["ip", "-o", "link", "show"])
        _, addr_text, _ = self.sh(["ip", "-o", "-4", "addr", "show"])
        links, addrs = parse_ip_link(link_text), parse_ip_addr(addr_text)
        mac = None
        arp: dict[str, tuple[ArpReply, ...]] = {}
        for iface in ifaces:
            vips = sorted({v.address for v in self.c.vips if v.interface == iface})
            configured = (
                {vip: self._keepalived_names(vip) for vip in vips}
                if any(a.address in vips for a in addrs)
                else {}
            )
            results = interface_results(self.h.name, iface, links, addrs, vips, configured)
            self.out.extend(results)
            if iface not in links:
                continue
            mac = mac or self._mac(iface)
            # One helper run per interface probes every VIP not held here.
            probe = [v for v in vips if not any(a.address == v for a in addrs)]
            src = next((n for v in probe if (n := subnet_for(v, addrs, iface))), None)
            if probe and src is not None:
                replies = self._arp_probe(iface, probe, src.address)
                if replies is not None:
                    arp.update({vip: tuple(replies) for vip in probe})
        self._ports()
        self._firewall(links)
        return _HostFacts(self.h.name, tuple(self.out), arp, (), mac, reachable=True)

    def _keepalived_names(self, vip: str) -> bool:
        rc, _, _ = self.sh(["grep", "-qwF", "--", vip, KEEPALIVED_CONF])
        return rc == 0

    def _mac(self, iface: str) -> str | None:
        rc, out, _ = self.sh(["cat", f"/sys/class/net/{iface}/address"])
        return out.strip().lower() if rc == 0 and out.strip() else None

    def _others(self) -> list[str]:
        """Addresses of every inventory host, to name a VIP holder by its MAC."""
        seen = []
        for h in self.c.inventory.hosts.values():
            if h.ip and h.ip not in seen and h.name != self.h.name:
                seen.append(h.ip)
        return seen[:256]

    def _arp_probe(self, iface: str, vips: Sequence[str], src: str) -> list[ArpReply] | None:
        argv = ["python3", "-c", PACKET_HELPER, "arp", iface, str(ARP_WAIT), src, ",".join(vips)]
        rc, out, err = self.sh([*argv, *self._others()])
        if rc == 0:
            return [r for f in parse_hex_lines(out) if (r := parse_arp(f))]
        # iputils arping in DAD mode: exit 0 = nobody answered, 1 = an answer (printed)
        replies: list[ArpReply] = []
        for vip in vips:
            rc2, out2, _ = self.sh(["arping", "-D", "-c", "2", "-w", "3", "-I", iface, vip])
            if rc2 not in (0, 1) or (rc2 == 1 and "reply" not in out2):
                self.add(
                    "vip-arp",
                    Level.WARN,
                    f"could not check who answers ARP for {vip} from {self.h.name}: "
                    f"{_first_line(err) or 'python3 and arping unavailable'}",
                )
                return None
            replies += [ArpReply(r.sender_mac, vip, "") for r in parse_arping(out2)]
        return replies

    def listen_vrrp(self, seconds: float) -> tuple[VrrpAdvert, ...] | None:
        ifaces = sorted({v.interface for v in self.c.vips})
        adverts: list[VrrpAdvert] = []
        for iface in ifaces:
            argv = ["python3", "-c", PACKET_HELPER, "vrrp", iface, f"{seconds:g}"]
            try:
                rc, out, err = self.sh(argv, timeout=seconds + CMD_TIMEOUT)
            except TransportError as e:
                err, rc, out = str(e), -1, ""
            if rc != 0:
                self.add(
                    "vrrp",
                    Level.WARN,
                    f"could not listen for VRRP on {self.h.name} {iface}: "
                    f"{_first_line(err) or f'exit {rc}'}",
                )
                return None
            adverts += [a for f in parse_hex_lines(out) if (a := parse_vrrp(f))]
        return tuple(adverts)

    def _ports(self) -> None:
        rc, out, err = self.sh(["ss", "-Htlnp"])
        if rc != 0:
            self.add("ports", Level.WARN, f"could not list listeners: {_first_line(err)}")
            return
        fronts = [(f.name, f.address, f.port) for f in self.c.frontends]
        self.out.extend(port_results(self.h.name, parse_ss(out), fronts))

    def _peers(self) -> list[str]:
        return [h.ip for h in self.c.lb_hosts if h.ip and h.name != self.h.name]

    def _firewall(self, links: Sequence[str]) -> None:
        iface = self.c.vips[0].interface
        peers = self._peers() or ["224.0.0.18"]
        verdicts: list[Verdict] = []
        rc, out, _ = self.sh(["sh", "-c", "command -v iptables-save >/dev/null && iptables-save"])
        if rc == 0:
            v = iptables_verdict(parse_iptables_save(out), peers[0], iface)
            if v is not None:
                verdicts.append(v)
        rc, out, _ = self.sh(["sh", "-c", "command -v nft >/dev/null && nft list ruleset"])
        chains = parse_nft_ruleset(out) if rc == 0 else []
        nv = nft_verdict(chains, peers[0], iface)
        if nv is not None:
            verdicts.append(nv)
        rc, out, _ = self.sh(
            [
                "sh",
                "-c",
                "command -v firewall-cmd >/dev/null && firewall-cmd --state "
                ">/dev/null 2>&1 && firewall-cmd --list-all",
            ]
        )
        firewalld_blocks = False
        if rc == 0:
            protos, rich = parse_firewalld(out)
            firewalld_blocks = not firewalld_allows_vrrp(protos, rich, peers[0])
        drops = [v for v in verdicts if v.drops]
        if not drops and not firewalld_blocks:
            what = "; ".join(v.where for v in verdicts) or "no firewall rules"
            self.add("firewall", Level.OK, f"VRRP (protocol 112) from peers allowed ({what})")
            return
        if self.open_firewall:
            self._open(peers, drops, firewalld_blocks)
            return
        for v in drops:
            level = Level.FAIL if v.certain else Level.WARN
            may = "drops" if v.certain else "may drop"
            self.add(
                "firewall",
                level,
                f"the firewall on {self.h.name} {may} VRRP (protocol 112) from the peers: "
                f"{v.where} (halb preflight --open-firewall adds an accept rule)",
            )
        if firewalld_blocks:
            self.add(
                "firewall",
                Level.FAIL,
                f"firewalld on {self.h.name} does not allow protocol vrrp "
                "(halb preflight --open-firewall adds a rich rule per peer)",
            )

    def _open(self, peers: Sequence[str], drops: Sequence[Verdict], firewalld: bool) -> None:
        done: list[str] = []
        for peer in peers:
            if any(v.where.startswith("iptables") for v in drops):
                rule = ["INPUT", "-p", "112", "-s", peer, "-j", "ACCEPT"]
                if self.sh(["iptables", "-C", *rule])[0] != 0:
                    rc, _, err = self.sh(["iptables", "-I", *rule[:1], "1", *rule[1:]])
                    self._opened(rc, err, f"iptables -I INPUT -p 112 -s {peer} -j ACCEPT", done)
            for v in drops:
                for fam, table, chain in v.nft_chains:
                    if (
                        fam == "ip"
                        and table == "filter"
                        and any(d.where.startswith("iptables") for d in drops)
                    ):
                        continue  # iptables-nft's own table: handled above
                    rc, _, err = self.sh(
                        [
                            "nft",
                            "insert",
                            "rule",
                            fam,
                            table,
                            chain,
                            "ip",
                            "saddr",
                            peer,
                            "ip",
                            "protocol",
                            "vrrp",
                            "accept",
                        ]
                    )
                    self._opened(
                        rc, err, f"nft {fam} {table} {chain}: accept vrrp from {peer}", done
                    )
            if firewalld:
                rich = f"rule family=ipv4 source address={peer} protocol value=vrrp accept"
                for extra in ([], ["--permanent"]):
                    rc, _, err = self.sh(["firewall-cmd", *extra, f"--add-rich-rule={rich}"])
                    self._opened(rc, err, f"firewalld {' '.join(extra)} {rich}".strip(), done)
        if done:
            self.add(
                "firewall", Level.OK, "opened VRRP (protocol 112) from peers: " + "; ".join(done)
            )

    def _opened(self, rc: int, err: str, what: str, done: list[str]) -> None:
        if rc == 0:
            done.append(what)
        else:
            self.add("firewall", Level.FAIL, f"could not add {what}: {_first_line(err)}")


def run_preflight(
    cluster: Cluster,
    transport_for: Callable[[Host], Transport],
    *,
    open_firewall: bool = False,
    listen_seconds: float | None = None,
) -> list[CheckResult]:
    """Run every check on every LB host in parallel; the VRRP listen overlaps the rest."""
    # keepalived's default advert is 1 s: listen long enough for three of those too.
    seconds = listen_seconds if listen_seconds is not None else 3 * max(cluster.advert_int, 1) + 0.5
    hosts = list(cluster.lb_hosts)
    transports = {h.name: transport_for(h) for h in hosts}
    checks = {h.name: _HostCheck(cluster, h, transports[h.name], open_firewall) for h in hosts}
    # Separate objects for the listen so its warnings land in a list of their own.
    listens = {h.name: _HostCheck(cluster, h, transports[h.name], False) for h in hosts}
    try:
        with ThreadPoolExecutor(max_workers=max(1, 2 * len(hosts))) as pool:
            for n, c in checks.items():
                c.start_listen = functools.partial(pool.submit, listens[n].listen_vrrp, seconds)
            facts_f = {n: pool.submit(c.run) for n, c in checks.items()}
            facts = {n: f.result() for n, f in facts_f.items()}
            heard = {n: c.heard.result() if c.heard else None for n, c in checks.items()}
    finally:
        for t in transports.values():
            t.close()
    return _judge(cluster, hosts, facts, heard, listens, seconds)


def _judge(
    cluster: Cluster,
    hosts: Sequence[Host],
    facts: Mapping[str, _HostFacts],
    heard: Mapping[str, tuple[VrrpAdvert, ...] | None],
    listens: Mapping[str, _HostCheck],
    seconds: float,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    for h in hosts:
        results.extend(facts[h.name].results)
    names = {h.ip: h.name for h in cluster.inventory.hosts.values() if h.ip}
    lb_addresses = {h.ip: h.name for h in hosts if h.ip}
    lb_macs = {f.mac: n for n, f in facts.items() if f.mac}
    by_vip: dict[str, dict[str, tuple[ArpReply, ...]]] = {}
    for h in hosts:
        for vip, replies in facts[h.name].arp.items():
            by_vip.setdefault(vip, {})[h.name] = replies
    for vip, heard_arp in by_vip.items():
        results.extend(arp_results(vip, heard_arp, names, lb_macs))
    reachable = [h.name for h in hosts if facts[h.name].reachable]
    for n in reachable:
        results.extend(listens[n].out)
    got = {n: a for n, a in heard.items() if a is not None and n in reachable}
    if got:
        router_ids = {v.router_id: (v.name, v.address) for v in cluster.vips}
        results.extend(vrrp_results(got, router_ids, lb_addresses, names, seconds))
    return _dedupe(results)


def _dedupe(results: Sequence[CheckResult]) -> list[CheckResult]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for r in results:
        key = (r.check, r.host, r.message)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out
