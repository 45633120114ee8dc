"""Host firewall rules (iptables, nft, firewalld) and what they do to VRRP from a peer."""

from __future__ import annotations

import ipaddress
import itertools
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Each prints the rules, or exits non-zero when that firewall is not there.
IPTABLES_SAVE = ["sh", "-c", "command -v iptables-save >/dev/null && iptables-save"]
NFT_RULESET = ["sh", "-c", "command -v nft >/dev/null && nft list ruleset"]
FIREWALLD_LIST = [
    "sh",
    "-c",
    "command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1 "
    "&& firewall-cmd --list-all",
]


@dataclass(frozen=True)
class Verdict:
    """What a host firewall does to a VRRP packet from a peer."""

    drops: bool
    certain: bool
    where: str  # "iptables INPUT policy DROP", "nft inet filter input: ip protocol vrrp drop"
    # nft chains that would need an accept rule: (family, table, chain)
    nft_chains: tuple[tuple[str, str, str], ...] = ()


@dataclass
class IptChain:
    policy: str = "-"
    rules: list[list[str]] = field(default_factory=list)


def parse_iptables_save(text: str) -> dict[str, dict[str, IptChain]]:
    """`iptables-save` -> {table: {chain: (policy, [rule argv...])}}."""
    tables: dict[str, dict[str, IptChain]] = {}
    table: dict[str, IptChain] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {})
        elif table is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            table.setdefault(name, IptChain()).policy = policy
        elif line.startswith("-A "):
            try:
                argv = shlex.split(line)
            except ValueError:
                continue
            table.setdefault(argv[1], IptChain()).rules.append(argv[2:])
    return tables


_VRRP_PROTOS = {"112", "vrrp"}


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
    tables: Mapping[str, Mapping[str, IptChain]], peer: str, iface: str
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
class NftChain:
    family: str
    table: str
    name: str
    hook: str = ""
    policy: str = "accept"
    rules: list[str] = field(default_factory=list)


def parse_nft_ruleset(text: str) -> list[NftChain]:
    """`nft list ruleset` -> chains with hook, policy and rule lines (text)."""
    chains: list[NftChain] = []
    family = table = ""
    current: NftChain | None = None
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if depth == 0 and line.startswith("table "):
            parts = line.split()
            family, table = (parts[1], parts[2]) if len(parts) >= 4 else ("ip", parts[1])
        elif depth == 1 and line.startswith("chain "):
            current = NftChain(family, table, line.split()[1])
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


def nft_verdict(chains: Sequence[NftChain], peer: str, iface: str) -> Verdict | None:
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
