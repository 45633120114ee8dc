"""`halb preflight --open-firewall`: the only preflight code that changes a host. It adds
rules accepting VRRP (protocol 112) from each peer to the firewalls that drop it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from halb.facts.firewall import Verdict

Run = Callable[[Sequence[str]], tuple[int, str, str]]


def open_vrrp(
    sh: Run, peers: Sequence[str], drops: Sequence[Verdict], firewalld: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """Returns what was added, and (what, stderr) for each rule that could not be."""
    done: list[str] = []
    failed: list[tuple[str, str]] = []

    def opened(rc: int, err: str, what: str) -> None:
        if rc == 0:
            done.append(what)
        else:
            failed.append((what, err))

    iptables = any(v.where.startswith("iptables") for v in drops)
    for peer in peers:
        if iptables:
            rule = ["INPUT", "-p", "112", "-s", peer, "-j", "ACCEPT"]
            if sh(["iptables", "-C", *rule])[0] != 0:
                rc, _, err = sh(["iptables", "-I", *rule[:1], "1", *rule[1:]])
                opened(rc, err, f"iptables -I INPUT -p 112 -s {peer} -j ACCEPT")
        for v in drops:
            for fam, table, chain in v.nft_chains:
                if fam == "ip" and table == "filter" and iptables:
                    continue  # iptables-nft's own table: handled above
                argv = ["nft", "insert", "rule", fam, table, chain]
                rc, _, err = sh([*argv, "ip", "saddr", peer, "ip", "protocol", "vrrp", "accept"])
                opened(rc, err, f"nft {fam} {table} {chain}: accept vrrp from {peer}")
        if firewalld:
            rich = f"rule family=ipv4 source address={peer} protocol value=vrrp accept"
            for extra in ([], ["--permanent"]):
                rc, _, err = sh(["firewall-cmd", *extra, f"--add-rich-rule={rich}"])
                opened(rc, err, f"firewalld {' '.join(extra)} {rich}".strip())
    return done, failed
