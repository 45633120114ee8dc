"""`halb preflight --open-firewall`: the commands that add rules accepting VRRP (protocol
112) from each peer to the firewalls that drop it (pure), per address family: IPv4
(iptables, `ip saddr`) and IPv6 (ip6tables, `ip6 saddr`, firewalld `family=ipv6`). The
preflight prints them, and runs them only with the flag."""

from __future__ import annotations

from dataclasses import dataclass

from halb.facts.firewall import LINK_LOCAL, VRRP_GROUP6
from halb.preflight.observed import FirewallState
from halb.shell import quote, sh

# iptables -C first, so a rule already there is not added twice
_IPTABLES_ONCE = 'iptables -C INPUT "$@" 2>/dev/null || iptables -I INPUT 1 "$@"'
_IP6TABLES_ONCE = 'ip6tables -C INPUT "$@" 2>/dev/null || ip6tables -I INPUT 1 "$@"'


@dataclass(frozen=True)
class FirewallCommand:
    host: str
    what: str  # as shown before it runs
    argv: tuple[str, ...]


def vrrp_commands(host: str, state: FirewallState) -> list[FirewallCommand]:
    """The rules to add on `host`, peer by peer; none when nothing drops VRRP."""
    drops = state.drops
    if not drops and not state.firewalld_blocks:
        return []
    if state.family == 6:
        return _vrrp6_commands(host, state)
    out: list[FirewallCommand] = []

    def add(argv: list[str], what: str | None = None) -> None:
        out.append(FirewallCommand(host, what or quote(argv), tuple(argv)))

    iptables = any(v.where.startswith("iptables") for v in drops)
    for peer in state.peers:
        if iptables:
            rule = ["-p", "112", "-s", peer, "-j", "ACCEPT"]
            add(sh(_IPTABLES_ONCE, *rule), f"iptables -I INPUT 1 {quote(rule)} (unless present)")
        for v in drops:
            for fam, table, chain in v.nft_chains:
                if fam == "ip" and table == "filter" and iptables:
                    continue  # iptables-nft's own table: handled above
                accept = ["ip", "saddr", peer, "ip", "protocol", "vrrp", "accept"]
                add(["nft", "insert", "rule", fam, table, chain, *accept])
        if state.firewalld_blocks:
            rich = f"rule family=ipv4 source address={peer} protocol value=vrrp accept"
            for extra in ([], ["--permanent"]):
                add(["firewall-cmd", *extra, f"--add-rich-rule={rich}"])
    return out


def _vrrp6_commands(host: str, state: FirewallState) -> list[FirewallCommand]:
    """IPv6: from each peer's address, or from the link-local range to VRRP's group
    (ff02::12) where the IPv6 instances send multicast."""
    out: list[FirewallCommand] = []

    def add(argv: list[str], what: str | None = None) -> None:
        out.append(FirewallCommand(host, what or quote(argv), tuple(argv)))

    drops = state.drops
    ip6tables = any(v.where.startswith("ip6tables") for v in drops)
    for peer in state.peers:
        group = peer == LINK_LOCAL
        if ip6tables:
            rule = [
                "-p",
                "112",
                "-s",
                peer,
                *(["-d", VRRP_GROUP6] if group else []),
                "-j",
                "ACCEPT",
            ]
            add(sh(_IP6TABLES_ONCE, *rule), f"ip6tables -I INPUT 1 {quote(rule)} (unless present)")
        for v in drops:
            for fam, table, chain in v.nft_chains:
                if fam == "ip6" and table == "filter" and ip6tables:
                    continue  # ip6tables-nft's own table: handled above
                daddr = ["ip6", "daddr", VRRP_GROUP6] if group else []
                accept = ["ip6", "saddr", peer, *daddr, "meta", "l4proto", "vrrp", "accept"]
                add(["nft", "insert", "rule", fam, table, chain, *accept])
        if state.firewalld_blocks:
            dest = f" destination address={VRRP_GROUP6}" if group else ""
            rich = f"rule family=ipv6 source address={peer}{dest} protocol value=vrrp accept"
            for extra in ([], ["--permanent"]):
                add(["firewall-cmd", *extra, f"--add-rich-rule={rich}"])
    return out
