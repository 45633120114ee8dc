"""Pure decisions: from what the hosts told (`collect`, as `Observed`) to findings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from halb import kinds, vrrp_filter
from halb.facts import firewall as fw
from halb.facts.ipaddr import IfAddr, subnet_for
from halb.facts.packets import ArpReply, VrrpAdvert
from halb.facts.ss import Listener, port_conflicts
from halb.level import Level
from halb.preflight.observed import FirewallState, NftProbe, Observed
from halb.preflight.report import PreflightResult, dedupe

if TYPE_CHECKING:
    from halb.inventory import Host
    from halb.spec import Cluster


def interface_results(
    host: str,
    iface: str,
    links: Sequence[str],
    addrs: Sequence[IfAddr],
    vips: Sequence[str],
    vip_configured: Mapping[str, bool],
) -> list[PreflightResult]:
    """Interface present, each VIP inside its subnet, and who holds the VIP on this host."""
    if iface not in links:
        have = ", ".join(links) or "none"
        return [
            PreflightResult(
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
                PreflightResult(
                    "interface",
                    host,
                    Level.FAIL,
                    f"VIP {vip} is not inside any subnet of {iface} on {host} "
                    f"({have or f'no IPv{kinds.family(vip)} address'})",
                    bad_input=True,
                )
            )
        else:
            out.append(
                PreflightResult(
                    "interface",
                    host,
                    Level.OK,
                    f"{iface} {net.interface_ip} holds VIP {vip} in its subnet",
                )
            )
        if any(a.address == vip for a in addrs):
            if vip_configured.get(vip):
                out.append(
                    PreflightResult(
                        "vip-holder",
                        host,
                        Level.OK,
                        f"{host} holds VIP {vip}: its keepalived config names it (deployed)",
                    )
                )
            else:
                out.append(
                    PreflightResult(
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
    macs: Mapping[str, str] | None = None,
) -> list[PreflightResult]:
    """Decide from the ARP replies (or, for an IPv6 VIP, neighbour advertisements) each LB
    host heard for `vip`.

    heard: prober -> replies; names: address -> host name; lb_macs: MAC -> LB host;
    macs: MAC -> address learnt from every ARP probe (names who answers over NDP).
    """
    probers = ", ".join(sorted(heard))
    replies = [r for rs in heard.values() for r in rs]
    owners = sorted({r.sender_mac for r in replies if r.sender_ip == vip})
    # An LB host answering for the VIP is judged by the interface check (its config).
    foreign = [m for m in owners if m not in lb_macs]
    # IPv6: neighbour discovery (a DAD-style solicitation) instead of ARP
    check, asked = ("vip-ndp", "neighbour solicitations") if ":" in vip else ("vip-arp", "ARP")
    if not foreign:
        return [
            PreflightResult(check, probers, Level.OK, f"no other host answers {asked} for {vip}")
        ]
    mac_to_ip = {
        **(macs or {}),
        **{r.sender_mac: r.sender_ip for r in replies if r.sender_ip != vip},
    }
    out = []
    for mac in foreign:
        ip = mac_to_ip.get(mac)
        host = names.get(ip, ip) if ip else None
        who = f"{host} ({ip}, {mac})" if host and ip else f"host with MAC {mac}"
        out.append(
            PreflightResult(
                check,
                host or mac,
                Level.FAIL,
                f"VIP {vip} is already in use: {who} answers {asked} for it (heard from {probers})",
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
) -> list[PreflightResult]:
    """heard: LB host -> adverts it received. router_ids: our id -> (VIP name, address)."""
    by_source: dict[tuple[int, str], tuple[VrrpAdvert, list[str]]] = {}
    for listener, adverts in heard.items():
        for a in adverts:
            entry = by_source.setdefault((a.router_id, a.source), (a, []))
            if listener not in entry[1]:
                entry[1].append(listener)
    out: list[PreflightResult] = []
    others: set[int] = set()
    for (rid, src), (a, listeners) in sorted(by_source.items()):
        if rid not in router_ids:
            others.add(rid)
            continue
        vip_name, vip = router_ids[rid]
        if a.family != (6 if ":" in vip else 4):  # VRRP ids are per address family
            others.add(rid)
            continue
        host = lb_addresses.get(src) or names.get(src) or src
        if src in lb_addresses and vip in a.addresses:
            out.append(
                PreflightResult(
                    "vrrp",
                    host,
                    Level.OK,
                    f"router id {rid}: adverts from {host} carry VIP {vip} (our keepalived)",
                )
            )
            continue
        out.append(
            PreflightResult(
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
            PreflightResult(
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
) -> list[PreflightResult]:
    """frontends: (name, vip, port)."""
    out = []
    for name, vip, port in frontends:
        taken = [x for x in port_conflicts(listeners, vip, port) if x.process != "haproxy"]
        if not taken:
            ours = any(x.process == "haproxy" for x in port_conflicts(listeners, vip, port))
            what = "bound by our haproxy" if ours else "free"
            out.append(
                PreflightResult(
                    "ports", host, Level.OK, f"{name} {kinds.hostport(vip, port)} {what}"
                )
            )
            continue
        x = taken[0]
        who = x.process or "a process"
        where = kinds.hostport(x.address, x.port)
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
            PreflightResult(
                "ports",
                host,
                Level.FAIL,
                f"{who} on {host} already listens on {where}, so HAProxy cannot bind "
                f"{kinds.hostport(vip, port)}{hint}",
                bad_input=True,
            )
        )
    return out


def listen_port_keys(cluster: Cluster, results: Sequence[PreflightResult]) -> list[PreflightResult]:
    """A redirected frontend's HAProxy binds its internal port (the public one stays with
    the host's own backend, halb/redirect.py): there the key to change is listen_port."""
    out = []
    for r in results:
        for f in cluster.redirected:
            old, new = f"frontends.{f.name}.port", f"frontends.{f.name}.listen_port"
            r = dataclasses.replace(r, message=r.message.replace(old, new))
        out.append(r)
    return out


def nftables_results(host: str, probe: NftProbe) -> list[PreflightResult]:
    """Whether nft can load halb's redirect on the host (its probe added nothing)."""
    if probe.rc == 0:
        return [
            PreflightResult(
                "nftables",
                host,
                Level.OK,
                "nft can load halb's redirect (NAT at prerouting, output)",
            )
        ]
    why = probe.said or f"exit {probe.rc}"
    return [
        PreflightResult(
            "nftables",
            host,
            Level.FAIL,
            f"halb's redirect of the public ports needs nftables with NAT ({why}): install "
            "nftables, or give the frontends ports of their own (frontends.NAME.port)",
        )
    ]


def firewall_results(
    host: str, verdicts: Sequence[fw.Verdict], firewalld_blocks: bool
) -> list[PreflightResult]:
    """What the firewalls do to VRRP from the peers (nothing was opened)."""
    drops = [v for v in verdicts if v.drops]
    if not drops and not firewalld_blocks:
        what = "; ".join(v.where for v in verdicts) or "no firewall rules"
        return [
            PreflightResult(
                "firewall", host, Level.OK, f"VRRP (protocol 112) from peers allowed ({what})"
            )
        ]
    out = []
    for v in drops:
        level = Level.FAIL if v.certain else Level.WARN
        may = "drops" if v.certain else "may drop"
        out.append(
            PreflightResult(
                "firewall",
                host,
                level,
                f"the firewall on {host} {may} VRRP (protocol 112) from the peers: "
                f"{v.where} (halb preflight --open-firewall adds an accept rule)",
            )
        )
    if firewalld_blocks:
        out.append(
            PreflightResult(
                "firewall",
                host,
                Level.FAIL,
                f"firewalld on {host} does not allow protocol vrrp "
                "(halb preflight --open-firewall adds a rich rule per peer)",
            )
        )
    return out


def _source6(peer: str) -> str:
    if peer == fw.LINK_LOCAL:
        return f"the peers' link-local addresses ({peer}, multicast to {fw.VRRP_GROUP6})"
    return peer


def firewall6_results(host: str, state: FirewallState) -> list[PreflightResult]:
    """What the firewalls do to VRRPv3 over IPv6 (next header 112) from one peer."""
    src = _source6(state.peers[0])
    drops = state.drops
    if not drops and not state.firewalld_blocks:
        what = "; ".join(v.where for v in state.verdicts) or "no firewall rules"
        return [
            PreflightResult(
                "firewall", host, Level.OK, f"VRRP over IPv6 from {src} allowed ({what})"
            )
        ]
    out = [
        PreflightResult(
            "firewall",
            host,
            Level.FAIL if v.certain else Level.WARN,
            f"VRRP over IPv6 from {src} {'is' if v.certain else 'may be'} dropped by "
            f"{v.where} on {host} (halb preflight --open-firewall adds an accept rule)",
        )
        for v in drops
    ]
    if state.firewalld_blocks:
        out.append(
            PreflightResult(
                "firewall",
                host,
                Level.FAIL,
                f"firewalld on {host} does not allow VRRP over IPv6 from {src} "
                "(halb preflight --open-firewall adds a rich rule)",
            )
        )
    return out


def host_results(
    cluster: Cluster, o: Observed, frontends: Sequence[tuple[str, str, int]]
) -> list[PreflightResult]:
    """One host's own findings: how it was reached, then (as root) its interfaces and
    VIPs, what could not be checked, its ports, nftables (for the redirect) and its
    firewall. `frontends`: (name, VIP, the port HAProxy binds)."""
    out = list(o.notes)
    if o.root:
        for iface in sorted({v.interface for v in cluster.vips}):
            vips = sorted({v.address for v in cluster.vips if v.interface == iface})
            configured = o.configured.get(iface, {})
            out += interface_results(o.host, iface, o.links, o.addrs, vips, configured)
    out += o.gaps
    if o.listeners is not None:
        out += listen_port_keys(cluster, port_results(o.host, o.listeners, frontends))
    if o.nft is not None:
        out += nftables_results(o.host, o.nft)
    if o.firewall is not None:
        out += firewall_results(o.host, o.firewall.verdicts, o.firewall.firewalld_blocks)
    for state in o.firewall6:
        out += firewall6_results(o.host, state)
    return out


def vrrp_filter_results(cluster: Cluster, facts: Mapping[str, Observed]) -> list[PreflightResult]:
    """halb's VRRP filter on each host against its peers' MACs now: a peer whose MAC
    changed (a replaced NIC) would have its adverts dropped, so it is a failure here,
    before `halb deploy` changes anything (the deploy learns the new MAC)."""
    macs = {n: o.macs for n, o in facts.items() if o.macs}
    tables = {n: o.vrrp_filter for n, o in facts.items() if o.vrrp_filter and o.vrrp_filter.present}
    changes = vrrp_filter.mac_changes(cluster, macs, tables)
    out = [PreflightResult("vrrp-filter", ch.host, Level.FAIL, ch.text) for ch in changes]
    bad = {ch.on for ch in changes}
    for n in tables:
        if n not in bad:
            out.append(
                PreflightResult(
                    "vrrp-filter", n, Level.OK, f"{n}'s VRRP filter accepts its peers' MACs now"
                )
            )
    return out


def judge(
    cluster: Cluster,
    hosts: Sequence[Host],
    facts: Mapping[str, Observed],
    heard: Mapping[str, tuple[VrrpAdvert, ...] | None],
    listen_notes: Mapping[str, Sequence[PreflightResult]],
    seconds: float,
) -> list[PreflightResult]:
    results: list[PreflightResult] = []
    # a redirected frontend's HAProxy binds its internal port (listen_port)
    fronts = [(f.name, a, f.bind_port) for f in cluster.frontends for a in f.addresses]
    for h in hosts:
        results.extend(host_results(cluster, facts[h.name], fronts))
    names = {h.ip: h.name for h in cluster.inventory.hosts.values() if h.ip}
    lb_addresses = {h.ip: h.name for h in hosts if h.ip}
    lb_addresses |= {a: h.name for h in hosts if (a := cluster.host_address(h, 6))}
    lb_macs = {f.mac: n for n, f in facts.items() if f.mac}
    by_vip: dict[str, dict[str, tuple[ArpReply, ...]]] = {}
    for h in hosts:
        for vip, replies in facts[h.name].arp.items():
            by_vip.setdefault(vip, {})[h.name] = replies
    vips = {v.address for v in cluster.vips}
    macs = {
        r.sender_mac: r.sender_ip
        for heard_arp in by_vip.values()
        for rs in heard_arp.values()
        for r in rs
        if r.sender_ip not in vips
    }
    for vip, heard_arp in by_vip.items():
        results.extend(arp_results(vip, heard_arp, names, lb_macs, macs))
    results.extend(vrrp_filter_results(cluster, facts))
    reachable = [h.name for h in hosts if facts[h.name].reachable]
    for n in reachable:
        results.extend(listen_notes[n])
    got = {n: a for n, a in heard.items() if a is not None and n in reachable}
    if got:
        router_ids = {v.router_id: (v.name, v.address) for v in cluster.vips}
        results.extend(vrrp_results(got, router_ids, lb_addresses, names, seconds))
    return dedupe(results)
