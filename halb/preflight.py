"""Preflight: network and host checks on every LB host before anything is deployed.

Nothing changes on any host (unless `open_firewall`). Every remote command runs through a
transport; every answer goes through a pure parser in `halb.facts`, tested on captured
text and bytes. `run_preflight` is the edge: it runs the hosts in parallel and returns
records; `exit_status` turns them into 0 / 1 / 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from halb.errors import ExitStatus, TransportError
from halb.facts import firewall as fw
from halb.facts.ipaddr import (
    IP_ADDR_V4,
    IP_LINK,
    IfAddr,
    ipv4,
    parse_ip_addr,
    parse_ip_link,
    subnet_for,
)
from halb.facts.packets import (
    ArpReply,
    VrrpAdvert,
    arp_probe_argv,
    arping_argv,
    parse_arp,
    parse_arping,
    parse_hex_lines,
    parse_vrrp,
    vrrp_listen_argv,
)
from halb.facts.ss import SS_LISTEN, Listener, parse_ss, port_conflicts
from halb.paths import KEEPALIVED_CONF

if TYPE_CHECKING:
    from halb.inventory import Host
    from halb.spec import Cluster
    from halb.transport import Transport

JSON_VERSION = 1
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
            have = ", ".join(str(a.interface_ip) for a in addrs if a.ifname == iface)
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
                        f"{next(a.ifname for a in addrs if a.address == vip)} and no keepalived "
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
class HostFindings:
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

    def run(self) -> HostFindings:
        try:
            return self._run()
        except TransportError as e:
            self.add("ssh", Level.FAIL, f"cannot run commands: {e}")
            return HostFindings(self.h.name, tuple(self.out))

    def _run(self) -> HostFindings:
        rc, _, err = self.sh(["true"])
        self.add("ssh", Level.OK, f"connected to {self.h.ssh_address}")
        mode = getattr(getattr(self.t, "privilege", None), "mode", "none")
        if rc != 0:
            self.add(
                "sudo",
                Level.FAIL,
                f"cannot become root on {self.h.name}: {_first_line(err) or f'exit {rc}'}",
            )
            return HostFindings(self.h.name, tuple(self.out), reachable=True)
        if self.start_listen is not None:
            self.heard = self.start_listen()
        how = {"none": "running as root", "sudo": "sudo -n", "sudo-password": "sudo with password"}
        self.add("sudo", Level.OK, f"root: {how.get(mode, mode)}")

        ifaces = sorted({v.interface for v in self.c.vips})
        _, link_text, _ = self.sh(IP_LINK)
        _, addr_text, _ = self.sh(IP_ADDR_V4)
        links, addrs = parse_ip_link(link_text), ipv4(parse_ip_addr(addr_text))
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
        return HostFindings(self.h.name, tuple(self.out), arp, (), mac, reachable=True)

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
                    f"{_first_line(err) or 'python3 and arping unavailable'}",
                )
                return None
            replies += [ArpReply(r.sender_mac, vip, "") for r in parse_arping(out2)]
        return replies

    def listen_vrrp(self, seconds: float) -> tuple[VrrpAdvert, ...] | None:
        ifaces = sorted({v.interface for v in self.c.vips})
        adverts: list[VrrpAdvert] = []
        for iface in ifaces:
            try:
                rc, out, err = self.sh(
                    vrrp_listen_argv(iface, seconds), timeout=seconds + CMD_TIMEOUT
                )
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
        rc, out, err = self.sh(SS_LISTEN)
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

    def _open(self, peers: Sequence[str], drops: Sequence[fw.Verdict], firewalld: bool) -> None:
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
    facts: Mapping[str, HostFindings],
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
