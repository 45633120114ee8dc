"""`halb preflight --open-firewall`: the commands that add rules accepting VRRP (protocol
112) from each peer to the firewalls that drop it (pure). The preflight prints them, and
runs them only with the flag."""

from __future__ import annotations

from dataclasses import dataclass

from halb.preflight.observed import FirewallState
from halb.shell import quote, sh

# iptables -C first, so a rule already there is not added twice
_IPTABLES_ONCE = 'iptables -C INPUT "$@" 2>/dev/null || iptables -I INPUT 1 "$@"'


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
