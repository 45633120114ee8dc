"""Collect: run the checks' commands on one LB host and keep what it told (`Observed`).

`run_preflight` collects every host in parallel (the VRRP listen overlaps the rest),
hands the observations to `judge`, shows the firewall commands `--open-firewall` runs
(open_firewall.py), and runs them only with that flag: the only change to a host.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from halb import redirect, vrrp_filter
from halb.errors import HalbError, TransportError
from halb.facts import firewall as fw
from halb.facts.ipaddr import (
    IP_ADDR,
    IP_ADDR_V4,
    IP_LINK,
    ipv4,
    parse_ip_addr,
    parse_ip_link,
    subnet_for,
    unicast,
)
from halb.facts.packets import (
    ArpReply,
    VrrpAdvert,
    arp_probe_argv,
    arping_argv,
    ndp_probe_argv,
    parse_arp,
    parse_arping,
    parse_hex_lines,
    parse_na,
    parse_vrrp,
    vrrp_listen_argv,
)
from halb.facts.ss import SS_LISTEN, Listener, parse_ss
from halb.level import Level
from halb.paths import KEEPALIVED_CONF
from halb.preflight.judge import judge
from halb.preflight.observed import FirewallState, NftProbe, Observed
from halb.preflight.open_firewall import FirewallCommand, vrrp_commands
from halb.preflight.report import PreflightResult

if TYPE_CHECKING:
    from halb.inventory import Host
    from halb.spec import Cluster
    from halb.transport import Transport

CMD_TIMEOUT = 20.0


def last_line(text: str) -> str:
    """The last non-empty line: where sudo, python and the firewall tools say what failed."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class HostCheck:
    def __init__(self, cluster: Cluster, host: Host, transport: Transport) -> None:
        self.c = cluster
        self.h = host
        self.t = transport
        self.notes: list[PreflightResult] = []  # how the host was reached
        self.out: list[PreflightResult] = []  # what could not be asked
        # Started once the host answered, so it overlaps the other checks.
        self.start_listen: Callable[[], Future[tuple[VrrpAdvert, ...] | None]] | None = None
        self.heard: Future[tuple[VrrpAdvert, ...] | None] | None = None

    def add(self, check: str, level: Level, message: str) -> None:
        self.out.append(PreflightResult(check, self.h.name, level, message))

    def note(self, check: str, level: Level, message: str) -> None:
        self.notes.append(PreflightResult(check, self.h.name, level, message))

    def sh(self, argv: Sequence[str], timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
        r = self.t.run(argv, timeout=timeout)
        return r.rc, r.out, r.err

    def run(self) -> Observed:
        try:
            return self._run()
        except TransportError as e:
            self.note("ssh", Level.FAIL, f"cannot run commands: {e}")
            return Observed(self.h.name, tuple(self.notes), tuple(self.out))

    def _run(self) -> Observed:
        rc, _, err = self.sh(["true"])
        self.note("ssh", Level.OK, f"connected to {self.h.ssh_address}")
        mode = getattr(getattr(self.t, "privilege", None), "mode", "none")
        if rc != 0:
            self.note(
                "sudo",
                Level.FAIL,
                f"cannot become root on {self.h.name}: {last_line(err) or f'exit {rc}'}",
            )
            return Observed(self.h.name, tuple(self.notes), tuple(self.out), reachable=True)
        if self.start_listen is not None:
            self.heard = self.start_listen()
        how = {"none": "running as root", "sudo": "sudo -n", "sudo-password": "sudo with password"}
        self.note("sudo", Level.OK, f"root: {how.get(mode, mode)}")

        ifaces = sorted({v.interface for v in self.c.vips})
        _, link_text, _ = self.sh(IP_LINK)
        ipv6 = any(v.family == 6 for v in self.c.vips)
        _, addr_text, _ = self.sh(IP_ADDR if ipv6 else IP_ADDR_V4)
        addrs = (unicast if ipv6 else ipv4)(parse_ip_addr(addr_text))
        links = parse_ip_link(link_text)
        mac = None
        arp: dict[str, tuple[ArpReply, ...]] = {}
        configured: dict[str, dict[str, bool]] = {}
        macs: dict[str, str] = {}
        for iface in ifaces:
            vips = sorted({v.address for v in self.c.vips if v.interface == iface})
            configured[iface] = (
                {vip: self._keepalived_names(vip) for vip in vips}
                if any(a.address in vips for a in addrs)
                else {}
            )
            if iface not in links:
                continue
            own = self._mac(iface)
            if own:
                macs[iface] = own
            mac = mac or own
            # One helper run per interface probes every VIP not held here.
            probe = [v for v in vips if not any(a.address == v for a in addrs)]
            probe4 = [v for v in probe if ":" not in v]
            src = next((n for v in probe4 if (n := subnet_for(v, addrs, iface))), None)
            if probe4 and src is not None:
                replies = self._arp_probe(iface, probe4, src.address)
                if replies is not None:
                    arp.update({vip: tuple(replies) for vip in probe4})
            # IPv6: neighbour discovery, as duplicate address detection asks (RFC 4862)
            probe6 = [v for v in probe if ":" in v and subnet_for(v, addrs, iface)]
            if probe6:
                heard = self._ndp_probe(iface, probe6)
                if heard is not None:
                    arp.update(
                        {vip: tuple(r for r in heard if r.sender_ip == vip) for vip in probe6}
                    )
        return Observed(
            self.h.name,
            tuple(self.notes),
            tuple(self.out),
            reachable=True,
            root=True,
            links=tuple(links),
            addrs=tuple(addrs),
            configured=configured,
            arp=arp,
            mac=mac,
            listeners=self._listeners(),
            firewall=self._firewall() if 4 in self.c.families else None,
            firewall6=self._firewall6() if 6 in self.c.families else (),
            nft=self._nft_probe() if self.c.redirected else None,
            macs=macs,
            vrrp_filter=self._vrrp_filter(),
        )

    def _vrrp_filter(self) -> vrrp_filter.FilterState | None:
        """halb's VRRP filter as loaded (its peers' MACs); None when it cannot be read."""
        rc, out, _ = self.sh(vrrp_filter.STATUS_ARGV)
        try:
            return vrrp_filter.parse_status(out) if rc == 0 else None
        except HalbError as e:
            self.add("vrrp-filter", Level.WARN, f"could not read halb's VRRP filter: {e}")
            return None

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
        rc, out, err = self.sh(arp_probe_argv(iface, vips, src, self._others()))
        if rc == 0:
            return [r for f in parse_hex_lines(out) if (r := parse_arp(f))]
        # iputils arping in DAD mode: exit 0 = nobody answered, 1 = an answer (printed)
        replies: list[ArpReply] = []
        for vip in vips:
            rc2, out2, _ = self.sh(arping_argv(iface, vip))
            if rc2 not in (0, 1) or (rc2 == 1 and "reply" not in out2):
                self.add(
                    "vip-arp",
                    Level.WARN,
                    f"could not check who answers ARP for {vip} from {self.h.name}: "
                    f"{last_line(err) or 'python3 and arping unavailable'}",
                )
                return None
            replies += [ArpReply(r.sender_mac, vip, "") for r in parse_arping(out2)]
        return replies

    def _ndp_probe(self, iface: str, vips: Sequence[str]) -> list[ArpReply] | None:
        rc, out, err = self.sh(ndp_probe_argv(iface, vips))
        if rc != 0:
            self.add(
                "vip-ndp",
                Level.WARN,
                f"could not check who answers neighbour solicitations for {', '.join(vips)} "
                f"from {self.h.name}: {last_line(err) or f'exit {rc}'}",
            )
            return None
        return [r for f in parse_hex_lines(out) if (r := parse_na(f))]

    def listen_vrrp(self, seconds: float) -> tuple[VrrpAdvert, ...] | None:
        ifaces = sorted({v.interface for v in self.c.vips})
        adverts: list[VrrpAdvert] = []
        for iface in ifaces:
            try:
                rc, out, err = self.sh(
                    vrrp_listen_argv(iface, seconds, any(v.family == 6 for v in self.c.vips)),
                    timeout=seconds + CMD_TIMEOUT,
                )
            except TransportError as e:
                err, rc, out = str(e), -1, ""
            if rc != 0:
                self.add(
                    "vrrp",
                    Level.WARN,
                    f"could not listen for VRRP on {self.h.name} {iface}: "
                    f"{last_line(err) or f'exit {rc}'}",
                )
                return None
            adverts += [a for f in parse_hex_lines(out) if (a := parse_vrrp(f))]
        return tuple(adverts)

    def _listeners(self) -> tuple[Listener, ...] | None:
        rc, out, err = self.sh(SS_LISTEN)
        if rc != 0:
            self.add("ports", Level.WARN, f"could not list listeners: {last_line(err)}")
            return None
        return tuple(parse_ss(out))

    def _nft_probe(self) -> NftProbe:
        """The redirect needs nft and NAT hooks: check a table of its shape, add nothing."""
        rc, out, err = self.sh(redirect.PROBE_ARGV)
        return NftProbe(rc, "" if rc == 0 else last_line(err) or last_line(out))

    def _peers(self) -> list[str]:
        return [h.ip for h in self.c.lb_hosts if h.ip and h.name != self.h.name]

    def _firewall(self) -> FirewallState:
        iface = self.c.vips[0].interface
        peers = self._peers() or ["224.0.0.18"]
        verdicts: list[fw.Verdict] = []
        rc, out, _ = self.sh(fw.IPTABLES_SAVE)
        if rc == 0:
            v = fw.iptables_verdict(fw.parse_iptables_save(out), peers[0], iface)
            if v is not None:
                verdicts.append(v)
        rc, out, _ = self.sh(fw.NFT_RULESET)
        chains = fw.parse_nft_ruleset(out) if rc == 0 else []
        nv = fw.nft_verdict(chains, peers[0], iface)
        if nv is not None:
            verdicts.append(nv)
        rc, out, _ = self.sh(fw.FIREWALLD_LIST)
        firewalld_blocks = False
        if rc == 0:
            protos, rich = fw.parse_firewalld(out)
            firewalld_blocks = not fw.firewalld_allows_vrrp(protos, rich, peers[0])
        return FirewallState(tuple(peers), tuple(verdicts), firewalld_blocks)

    def _firewall6(self) -> tuple[FirewallState, ...]:
        """VRRPv3 over IPv6: each peer's `ip6` (unicast, to this host's), or without
        unicast the peers' link-local addresses to ff02::12; one state per peer."""
        iface = next(v.interface for v in self.c.vips if v.family == 6)
        own = self.c.host_address(self.h, 6)
        peers = [
            a for h in self.c.lb_hosts if h.name != self.h.name and (a := self.c.host_address(h, 6))
        ]
        dest = own
        if not (self.c.spec.vrrp.unicast and peers and own):
            peers, dest = [fw.LINK_LOCAL], fw.VRRP_GROUP6
        rc, out, _ = self.sh(fw.IP6TABLES_SAVE)
        tables = fw.parse_iptables_save(out) if rc == 0 else {}
        # ip6tables-nft's filter table is nft's `ip6 filter`: judged once, as ip6tables
        shared = "filter" in tables and fw.nft_backed(out)
        rc, out, _ = self.sh(fw.NFT_RULESET)
        chains = fw.parse_nft_ruleset(out) if rc == 0 else []
        chains = [c for c in chains if not (shared and (c.family, c.table) == ("ip6", "filter"))]
        rc, out, _ = self.sh(fw.FIREWALLD_LIST)
        zone = fw.parse_firewalld(out) if rc == 0 else None
        states = []
        for peer in peers:
            verdicts = [
                v
                for v in (
                    fw.iptables_verdict(tables, peer, iface, tool="ip6tables", dest=dest),
                    fw.nft_verdict(chains, peer, iface, dest),
                )
                if v is not None
            ]
            blocks = zone is not None and not fw.firewalld_allows_vrrp(*zone, peer, dest)
            states.append(FirewallState((peer,), tuple(verdicts), blocks, family=6))
        return tuple(states)


def open_firewall_on(t: Transport, commands: Sequence[FirewallCommand]) -> list[PreflightResult]:
    """Run one host's firewall commands (all of them, whatever fails): what was added,
    and each rule that could not be."""
    done: list[str] = []
    out: list[PreflightResult] = []
    for c in commands:
        try:
            r = t.run(list(c.argv), timeout=CMD_TIMEOUT)
            rc, err = r.rc, r.err
        except TransportError as e:
            rc, err = -1, str(e)
        if rc == 0:
            done.append(c.what)
        else:
            out.append(
                PreflightResult(
                    "firewall", c.host, Level.FAIL, f"could not add {c.what}: {last_line(err)}"
                )
            )
    if done:
        message = "opened VRRP (protocol 112) from peers: " + "; ".join(done)
        out.insert(0, PreflightResult("firewall", t.name, Level.OK, message))
    return out


def run_preflight(
    cluster: Cluster,
    transport_for: Callable[[Host], Transport],
    *,
    open_firewall: bool = False,
    listen_seconds: float | None = None,
    show: Callable[[Sequence[FirewallCommand]], None] | None = None,
) -> list[PreflightResult]:
    """Run every check on every LB host in parallel (the VRRP listen overlaps the rest),
    judge what they told, then the firewall: the commands that would open VRRP go to
    `show`, and run only with `open_firewall` (their results replace those hosts'
    firewall findings)."""
    # keepalived's default advert is 1 s: listen long enough for three of those too.
    seconds = listen_seconds if listen_seconds is not None else 3 * max(cluster.advert_int, 1) + 0.5
    hosts = list(cluster.lb_hosts)
    transports = {h.name: transport_for(h) for h in hosts}
    checks = {h.name: HostCheck(cluster, h, transports[h.name]) for h in hosts}
    # Separate objects for the listen so its warnings land in a list of their own.
    listens = {h.name: HostCheck(cluster, h, transports[h.name]) for h in hosts}
    try:
        with ThreadPoolExecutor(max_workers=max(1, 2 * len(hosts))) as pool:
            for n, c in checks.items():
                c.start_listen = functools.partial(pool.submit, listens[n].listen_vrrp, seconds)
            facts_f = {n: pool.submit(c.run) for n, c in checks.items()}
            facts = {n: f.result() for n, f in facts_f.items()}
            heard = {n: c.heard.result() if c.heard else None for n, c in checks.items()}
        notes = {n: tuple(c.out) for n, c in listens.items()}
        results = judge(cluster, hosts, facts, heard, notes, seconds)
        commands = {
            n: [c for st in (f.firewall, *f.firewall6) if st for c in vrrp_commands(n, st)]
            for n, f in facts.items()
        }
        commands = {n: c for n, c in commands.items() if c}
        if commands and show is not None:
            show([c for cs in commands.values() for c in cs])
        if not (open_firewall and commands):
            return results
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            opened = dict(
                zip(
                    commands,
                    pool.map(lambda n: open_firewall_on(transports[n], commands[n]), commands),
                    strict=True,
                )
            )
    finally:
        for t in transports.values():
            t.close()
    # the hosts opened: what was done replaces what the firewall did before
    kept = [r for r in results if not (r.check == "firewall" and r.host in opened)]
    return kept + [f for n in opened for f in opened[n]]
