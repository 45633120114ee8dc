"""Host firewall rules (iptables, ip6tables, nft, firewalld) and what they do to VRRP from a
peer, per address family: an IPv4 packet (protocol 112) or an IPv6 one (next header 112,
VRRPv3). The peer is an address, or a network for senders known only by their range: the
link-local addresses an IPv6 instance without unicast sends from (fe80::/10, to ff02::12)."""

from __future__ import annotations

import ipaddress
import itertools
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Each prints the rules, or exits non-zero when that firewall is not there.
IPTABLES_SAVE = ["sh", "-c", "command -v iptables-save >/dev/null && iptables-save"]
IP6TABLES_SAVE = ["sh", "-c", "command -v ip6tables-save >/dev/null && ip6tables-save"]
NFT_RULESET = ["sh", "-c", "command -v nft >/dev/null && nft list ruleset"]
FIREWALLD_LIST = [
    "sh",
    "-c",
    "command -v firewall-cmd >/dev/null && firewall-cmd --state >/dev/null 2>&1 "
    "&& firewall-cmd --list-all",
]


# VRRPv3 over IPv6 without unicast: from the sender's link-local address to this group
LINK_LOCAL = "fe80::/10"
VRRP_GROUP6 = "ff02::12"


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


def inside(peer: str, nets: Iterable[str]) -> bool | None:
    """Is the source `peer` (an address, or a network of senders) inside one of `nets`?
    None: cannot tell (a network only partly inside, or a value that is no address). A
    net of the other family is never a match."""
    try:
        src = ipaddress.ip_network(peer, strict=False)
        partly = False
        for n in nets:
            net = ipaddress.ip_network(n.strip(), strict=False)
            if net.version != src.version:
                continue
            if src.subnet_of(net):  # type: ignore[arg-type]
                return True
            partly = partly or src.overlaps(net)
        return None if partly else False
    except ValueError:
        return None


def _ipt_match(
    rule: list[str], peer: str, iface: str, dest: str | None = None
) -> tuple[bool, bool]:
    """Does the rule match a VRRP packet from peer on iface (to dest, when known)?
    (matches, certain)."""
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
        elif opt in ("-s", "--source") or (opt in ("-d", "--destination") and dest):
            addr = dest if opt in ("-d", "--destination") else peer
            found = inside(addr or "", val.split(","))
            if found is None:
                hit, certain = True, False
            else:
                hit = found
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
    tables: Mapping[str, Mapping[str, IptChain]],
    peer: str,
    iface: str,
    *,
    tool: str = "iptables",
    dest: str | None = None,
) -> Verdict | None:
    """Walk filter/INPUT (following user chains) for a VRRP packet; None if no filter table.
    `tool`: "ip6tables" for `ip6tables-save` (the same format), named in the verdict."""
    chains = tables.get("filter")
    if not chains or "INPUT" not in chains:
        return None

    def walk(name: str, depth: int) -> tuple[str, bool, str] | None:
        chain = chains.get(name)
        if chain is None or depth > 8:
            return None
        for rule in chain.rules:
            matches, certain = _ipt_match(rule, peer, iface, dest)
            if not matches:
                continue
            target = _ipt_target(rule)
            where = f"{tool} {name}: -A {name} {' '.join(rule)}"
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
    return Verdict(policy == "DROP", True, f"{tool} INPUT policy {policy}")


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


def nft_backed(save: str) -> bool:
    """iptables-save / ip6tables-save of iptables-nft ("... v1.8.9 (nf_tables)"): its
    `filter` table is nft's `ip filter` / `ip6 filter`, the same rules (nft marks it
    "managed by iptables-nft" only at times)."""
    return "(nf_tables)" in save.split("\n", 1)[0]


_NFT_VERDICT_RE = re.compile(r"\b(accept|drop|reject)\b")
_NFT_COMMENT = re.compile(r'\bcomment\s+"[^"]*"')
_NFT_VALUE = r"(!=\s*)?(\{[^}]*\}|\S+)"
_NFT_IIF_RE = re.compile(r"\biifname\s+(!=\s*)?\"?([^\"\s]+)\"?")


@dataclass(frozen=True)
class _NftWords:
    """How an nft rule names a packet's protocol and addresses, for one family."""

    proto: re.Pattern[str]
    saddr: re.Pattern[str]
    daddr: re.Pattern[str]
    other: re.Pattern[str]  # a match only the other family's packets pass
    known: str  # what the rule may hold besides those and still be judged


def _nft_words(ip: str, proto: str, nfproto: str, other: str) -> _NftWords:
    return _NftWords(
        proto=re.compile(rf"\b(?:{proto}|meta l4proto)\s+(\{{[^}}]*\}}|\S+)"),
        saddr=re.compile(rf"(?<![\w.]){ip} saddr\s+{_NFT_VALUE}"),
        daddr=re.compile(rf"(?<![\w.]){ip} daddr\s+{_NFT_VALUE}"),
        other=re.compile(other),
        known=rf"\bmeta nfproto {nfproto}\b|(?<![\w.]){ip} saddr\s+{_NFT_VALUE}|",
    )


_NFT_FAMILY = {
    4: _nft_words(
        "ip",
        "ip protocol",
        "ipv4",
        r"\bmeta nfproto ipv6\b|(?<![\w.])ip6 (?:saddr|daddr|nexthdr)\b",
    ),
    6: _nft_words(
        "ip6",
        "ip6 nexthdr",
        "ipv6",
        r"\bmeta nfproto ipv4\b|(?<![\w.])ip (?:saddr|daddr|protocol)\b",
    ),
}
_NFT_KNOWN_TAIL = (
    r"\b(ip protocol|ip6 nexthdr|meta l4proto)\s+(\{[^}]*\}|\S+)|"
    r"\biifname\s+(!=\s*)?\S+|\bcounter(\s+packets \d+ bytes \d+)?|"
    r"\b(accept|drop|reject)(\s+with\s+.*)?$|\blog\b.*"
)


def _family(peer: str) -> int:
    try:
        return ipaddress.ip_network(peer, strict=False).version
    except ValueError:
        return 4


def _nft_addr(words: re.Pattern[str], rule: str, addr: str) -> tuple[bool, bool] | None:
    """A saddr/daddr match of the rule against `addr`: (matches, certain), None when the
    rule has none."""
    m = words.search(rule)
    if m is None:
        return None
    found = inside(addr, m.group(2).strip("{}").split(","))
    if found is None:
        return True, False
    return found != bool(m.group(1)), True


def _nft_rule_match(rule: str, peer: str, iface: str, dest: str | None = None) -> tuple[bool, bool]:
    fam = _family(peer)
    words = _NFT_FAMILY[fam]
    if words.other.search(rule):
        return False, True  # e.g. `ip6 saddr ...` for an IPv4 packet
    m = words.proto.search(rule)
    if m:
        protos = {p.strip() for p in m.group(1).strip("{}").split(",")}
        if not protos & _VRRP_PROTOS:
            return False, True
    certain = True
    # an address match the rule has but no value to judge it by stays in `leftover`
    checks = [(words.saddr, peer)] + ([(words.daddr, dest)] if dest is not None else [])
    for pattern, addr in checks:
        got = _nft_addr(pattern, rule, addr)
        if got is not None:
            if not got[0]:
                return False, True
            certain = certain and got[1]
    if not certain:
        return True, False
    m = _NFT_IIF_RE.search(rule)
    if m:
        pat = m.group(2)
        hit = pat == iface or (pat.endswith("*") and iface.startswith(pat[:-1]))
        if hit == bool(m.group(1)):
            return False, True
    known = words.known
    if dest is not None:
        known += words.daddr.pattern + "|"
    leftover = re.sub(known + _NFT_KNOWN_TAIL, "", _NFT_COMMENT.sub("", rule).strip()).strip()
    return True, not leftover


def nft_verdict(
    chains: Sequence[NftChain], peer: str, iface: str, dest: str | None = None
) -> Verdict | None:
    """Every input-hook chain of the packet's family (ip or ip6, and inet) must let it
    through; None when there is none."""
    families = ("ip6", "inet") if _family(peer) == 6 else ("ip", "inet")
    base = [c for c in chains if c.hook == "input" and c.family in families]
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
            matches, certain = _nft_rule_match(rule, peer, iface, dest)
            if not matches:
                continue
            if v.group(1) == "accept" and certain:
                verdict = Verdict(False, True, f"{name}: {rule}")
                break
            if v.group(1) in ("drop", "reject") and (
                certain or _NFT_FAMILY[_family(peer)].proto.search(rule)
            ):
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


_RICH_FAMILY = re.compile(r'\bfamily="?(ipv4|ipv6)"?')
_RICH_SOURCE = re.compile(r'\bsource\s+(NOT\s+)?address="?([^"\s]+)"?')
_RICH_DEST = re.compile(r'\bdestination\s+(NOT\s+)?address="?([^"\s]+)"?')


def firewalld_allows_vrrp(
    protocols: set[str], rich: Sequence[str], peer: str, dest: str | None = None
) -> bool:
    """The zone's protocols, or an accepting rich rule of the peer's family (a rule
    without a family is for both) whose source (and destination, when known) take it."""
    if "vrrp" in protocols or "112" in protocols:
        return True
    family = f"ipv{_family(peer)}"
    for r in rich:
        if not (re.search(r'protocol value="?(vrrp|112)"?', r) and "accept" in r):
            continue
        f = _RICH_FAMILY.search(r)
        if f is not None and f.group(1) != family:
            continue
        ok = True
        for pattern, addr in ((_RICH_SOURCE, peer), (_RICH_DEST, dest)):
            m = pattern.search(r)
            if m is None or addr is None:  # no destination known: as before, not judged
                continue
            found = inside(addr, [m.group(2)])
            ok = ok and found is not None and found != bool(m.group(1))
        if ok:
            return True
    return False
