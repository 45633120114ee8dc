"""Every offline check of a spec against its inventory (pure)."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from halb import kinds
from halb.errors import SpecError
from halb.files import read_input
from halb.inventory import Host, Inventory
from halb.kinds import shown
from halb.roles import GROUP_NAMES, Role, backend_group, role_group, role_of_group
from halb.spec.cluster import Backend, ResolvedFrontend, ResolvedVip
from halb.spec.findings import Finding
from halb.spec.model import FrontendSpec, Spec, VipSpec
from halb.spec.profiles import (
    LOWEST_DEFAULT_PRIORITY,
    PROFILES,
    VRRP_PASS_MAX,
    default_priorities,
    derive_router_id,
)

_PORT_TEXT = re.compile(r"[0-9]{1,5}", re.ASCII)

# HAProxy's first internal port for a redirected frontend (the port OpenShift's on-prem
# load balancer uses for the same job); outside the NodePort range 30000-32767 and the
# kernel's ephemeral range 32768-60999, so neither kube-proxy nor a client takes it.
REDIRECT_BASE_PORT = 9445


def etcd_tolerance_table() -> str:
    rows = [(n, (n - 1) // 2) for n in range(1, 8)]
    return "members/failures tolerated: " + ", ".join(f"{n}/{t}" for n, t in rows)


class Checker:
    def __init__(self, spec: Spec, path: Path, inventory: Inventory) -> None:
        self.spec = spec
        self.path = path
        self.inv = inventory
        self.findings: list[Finding] = []
        self.file = path.name
        self.inv_file = inventory.source.name

    def error(self, key: str, message: str, *, inventory: bool = False) -> None:
        where = f"{self.inv_file}: {key}" if inventory else f"{self.file}: {key}"
        self.findings.append(Finding("error", where, message))

    def warn(self, key: str, message: str, *, inventory: bool = False) -> None:
        where = f"{self.inv_file}: {key}" if inventory else f"{self.file}: {key}"
        self.findings.append(Finding("warning", where, message))

    def note(self, key: str, message: str) -> None:
        self.findings.append(Finding("note", f"{self.file}: {key}", message))

    # -- pieces -------------------------------------------------------------

    def group(self, name: str) -> list[Host] | None:
        if name not in self.inv.groups:
            return None
        return self.inv.group_hosts(name)

    def lb_hosts(self) -> list[Host]:
        if self.spec.lb_hosts is not None:
            hosts = []
            first: dict[str, int] = {}
            for i, n in enumerate(self.spec.lb_hosts):
                if first.setdefault(n, i) != i:
                    self.error(f"lb_hosts[{i}]", f"host {n} is already lb_hosts[{first[n]}]")
                elif n not in self.inv.hosts:
                    near = difflib.get_close_matches(n, list(self.inv.hosts)[:10_000], n=1)
                    hint = f"; did you mean '{near[0]}'?" if near else ""
                    self.error(f"lb_hosts[{i}]", f"host {shown(n)} is not in {self.inv_file}{hint}")
                else:
                    hosts.append(self.inv.hosts[n])
            if not self.spec.lb_hosts:
                self.error("lb_hosts", "empty list: name at least one LB host")
            return hosts
        for role in (Role.LB, Role.CONTROL_PLANE):
            group = role_group(self.inv, role)
            members = self.group(group) if group else None
            if members:
                return members
        names = ", ".join(f"[{g}]" for g in GROUP_NAMES[Role.LB] + GROUP_NAMES[Role.CONTROL_PLANE])
        self.error(
            "lb_hosts",
            f"no LB hosts: {self.inv_file} has none of the groups {names} with hosts; "
            "add an [lb] group or set lb_hosts",
        )
        return []

    def host_addresses(self, lbs: Sequence[Host]) -> None:
        seen: dict[str, str] = {}
        # canonical: an IPv6 address has many spellings; with IPv6 VIPs `ip6` is rendered too
        six = 6 in self.families()
        for h in self.inv.hosts.values():
            for var, ip in (("ip", h.ip), ("ip6", h.vars.get("ip6") if six else None)):
                if not isinstance(ip, str):
                    continue
                key = _canonical(ip)
                if seen.get(key, h.name) != h.name:
                    self.error(
                        f"host {h.name}",
                        f"{var} {kinds.clip(ip)} is also the address of host {seen[key]}",
                        inventory=True,
                    )
                seen.setdefault(key, h.name)
        for h in lbs:
            ip = h.ip
            if ip is None:
                self.error(
                    f"host {h.name}",
                    "LB host has no address: set ip= (or ansible_host=) for it",
                    inventory=True,
                )
                continue
            # unicast_src_ip and unicast_peer take an address of the VIP's family; without
            # unicast the address is not rendered, but it is still checked for its kind.
            if self.families() == {4}:
                try:
                    kinds.ipv4(ip) if self.spec.vrrp.unicast else kinds.address(ip)
                except ValueError:
                    self.error(
                        f"host {h.name}",
                        f"ip {shown(ip)} is not an IPv4 address; VRRP unicast needs one (set ip=)"
                        if self.spec.vrrp.unicast
                        else f"ip {shown(ip)} is not an IP address (set ip=)",
                        inventory=True,
                    )
            else:
                self.lb_host_ipv6(h)
            port = h.vars.get("ansible_port", h.vars.get("ansible_ssh_port", 22))
            # ASCII digits only: "²" passes str.isdigit() and int() refuses it
            if type(port) is str and _PORT_TEXT.fullmatch(port):
                port = int(port)
            if type(port) is not int or not 1 <= port <= 65535:
                self.error(
                    f"host {h.name}",
                    f"ansible_port {shown(port)} is not a port (1..65535)",
                    inventory=True,
                )
        conflicts = getattr(self.inv, "conflicts", ())
        for c in conflicts:
            self.error(f"host {c[0]}", str(c[1]), inventory=True)

    def families(self) -> set[int]:
        """The address families of the spec's VIPs (4, 6 or both)."""
        vs = [self.spec.vips.internal, self.spec.vips.external]
        out = {v.address.version for v in vs if v is not None}
        return out | {6 for v in vs if v is not None and v.address6 is not None}

    def lb_host_ipv6(self, h: Host) -> None:
        """An LB host of a spec with IPv6 VIPs: `ip` (and `ip6`) are addresses by the IPv6
        rules, and VRRP unicast has an address of each VIP family to send from."""
        for var, value in (("ip", h.ip), ("ip6", h.vars.get("ip6"))):
            if value is None:
                continue
            try:
                ip = kinds.host_ip(value)
            except ValueError as e:
                self.error(f"host {h.name}", f"{var} {e} (set {var}=)", inventory=True)
                return
            # the IPv4 instances send from and to `ip`: an IPv4 ip6 would leave them an
            # IPv6 one, and their unicast_peer another family than their VIP
            if var == "ip6" and kinds.family(ip) != 6:
                self.error(
                    f"host {h.name}",
                    f"ip6 {ip} is not an IPv6 address; ip6 is the IPv6 address beside ip "
                    "(set ip6=)",
                    inventory=True,
                )
                return
        if not self.spec.vrrp.unicast:
            return
        has = {kinds.family(a) for a in (h.ip, h.vars.get("ip6")) if isinstance(a, str)}
        for fam in sorted(self.families() - has):
            var = "ip6= (or ip=)" if fam == 6 else "ip="
            self.error(
                f"host {h.name}",
                f"LB host has no IPv{fam} address; VRRP unicast over IPv{fam} needs one "
                f"(set {var})",
                inventory=True,
            )

    def vips(self, lbs: Sequence[Host]) -> list[ResolvedVip]:
        names = [h.name for h in lbs]
        out: list[ResolvedVip] = []
        host_ips = {h.ip: h.name for h in self.inv.hosts.values() if h.ip}
        host_ips |= {
            _canonical(h.vars["ip6"]): h.name
            for h in self.inv.hosts.values()
            if isinstance(h.vars.get("ip6"), str)
        }
        host_ips |= {_canonical(ip): n for ip, n in host_ips.items()}
        specs = [("internal", self.spec.vips.internal)]
        ext = self.spec.vips.external
        if ext and ext.address != self.spec.vips.internal.address:
            specs.append(("external", ext))
        elif ext and ext.address6 != self.spec.vips.internal.address6:
            self.error(
                "vips.external.address6",
                "the external VIP shares the internal one's address: give it the same "
                "address6 (or none)",
            )
        used_ids: dict[int, str] = {}
        for name, v in specs:
            key = f"vips.{name}"
            self.vip_families(key, v)
            for fam_key, address, subnet, router_id in (
                ("", v.address, v.subnet, v.router_id),
                ("6", v.address6, v.subnet6, v.router_id6),
            ):
                if address is None:
                    continue
                addr = str(address)
                if addr in host_ips:
                    self.error(
                        f"{key}.address{fam_key}",
                        f"{addr} is the address of host {host_ips[addr]}; "
                        "a VIP must be a free address",
                    )
                if subnet is not None:
                    self.vip_subnet(
                        f"{key}.address{fam_key}", f"{key}.subnet{fam_key}", address, subnet, lbs
                    )
                if router_id is not None:
                    if not 1 <= router_id <= 255:
                        self.error(
                            f"{key}.router_id{fam_key}",
                            f"must be 1..255 (got {shown(router_id)})",
                        )
                        continue
                    rid = router_id
                else:
                    rid = derive_router_id(self.spec.cluster, addr)
                    while rid in used_ids:  # every instance needs its own
                        rid = rid % 255 + 1
                if rid in used_ids:
                    self.error(
                        f"{key}.router_id{fam_key}",
                        f"{rid} is already the router id of vips.{used_ids[rid]}; "
                        "each VIP needs its own",
                    )
                used_ids[rid] = f"{name}{'.address6' if fam_key else ''}"
                prios = self.priorities(key, v, names)
                out.append(
                    ResolvedVip(
                        name,
                        addr,
                        v.interface,
                        rid,
                        prios,
                        self.preempt_delay(),
                        family=address.version,
                    )
                )
        return out

    def vip_families(self, key: str, v: VipSpec) -> None:
        """address6 is the IPv6 VIP beside an IPv4 address; subnets match their address."""
        if v.address6 is not None and v.address.version == 6:
            self.error(
                f"{key}.address6",
                f"{key}.address is already IPv6 ({v.address}); address6 is the IPv6 VIP "
                "beside an IPv4 address (dual-stack)",
            )
        if v.address6 is None:
            for what, value in (("subnet6", v.subnet6), ("router_id6", v.router_id6)):
                if value is not None:
                    self.error(f"{key}.{what}", f"{what} belongs to address6: set {key}.address6")
        # subnet6 and address6 are IPv6 by their types: only subnet can differ from its address
        net = v.subnet
        if net is not None and net.version != v.address.version:
            self.error(
                f"{key}.subnet", f"{net} is IPv{net.version} and {v.address} IPv{v.address.version}"
            )

    def vip_subnet(
        self,
        key: str,
        subnet_key: str,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        subnet: ipaddress.IPv4Network | ipaddress.IPv6Network,
        lbs: Sequence[Host],
    ) -> None:
        """The VIP inside its subnet, not its network, broadcast or subnet-router anycast
        address, and every LB host's address of that family inside it too."""
        addr = str(address)
        if address.version != subnet.version:
            return  # vip_families() says so
        if address not in subnet:
            self.error(key, f"{addr} is outside {subnet_key} {subnet}")
        elif (
            subnet.version == 4
            and subnet.prefixlen <= 30
            and address
            in (
                subnet.network_address,
                subnet.broadcast_address,
            )
        ):
            what = "network" if address == subnet.network_address else "broadcast"
            self.error(key, f"{addr} is the {what} address of {subnet}")
        elif subnet.version == 6 and subnet.prefixlen <= 126 and address == subnet.network_address:
            self.error(key, f"{addr} is the subnet-router anycast address of {subnet}")
        for h in lbs:
            values = [h.ip or ""] if subnet.version == 4 else [h.ip or "", h.vars.get("ip6")]
            for value in values:
                try:
                    hip = ipaddress.ip_address(kinds.host_ip(value))
                except ValueError:
                    continue
                if hip.version != subnet.version:
                    continue
                if hip not in subnet:
                    self.error(
                        subnet_key,
                        f"LB host {h.name} ({hip}) is outside {subnet}: "
                        "the VIP must be on the LB hosts' segment",
                    )

    def priorities(self, key: str, v: VipSpec, names: Sequence[str]) -> dict[str, int]:
        if v.priorities is None:
            profile = PROFILES[self.spec.vrrp.profile]
            most = profile.top_priority - LOWEST_DEFAULT_PRIORITY + 1
            if len(names) > most:
                self.error(
                    "lb_hosts",
                    f"{len(names)} LB hosts; the {self.spec.vrrp.profile} profile gives distinct "
                    f"VRRP priorities to at most {most} (set vips.*.priorities for more)",
                )
            return default_priorities(names, profile)
        given = dict(v.priorities)
        known = set(names)
        for n in given:
            if n not in known:
                self.error(
                    f"{key}.priorities.{n}",
                    f"'{n}' is not an LB host ({shown(', '.join(names), 200)[1:-1]})",
                )
        for n in names:
            if n not in given:
                self.error(f"{key}.priorities", f"no priority for LB host {n}")
        for n, p in given.items():
            if not 1 <= p <= 254:
                self.error(f"{key}.priorities.{n}", f"must be 1..254 (got {shown(p)})")
        values = list(given.values())
        if len(set(values)) != len(values):
            self.error(
                f"{key}.priorities",
                "priorities must be distinct (equal ones make the election depend on addresses)",
            )
        return {n: given.get(n, 100) for n in names}

    def preempt_delay(self) -> float:
        v = self.spec.vrrp
        if v.nopreempt:
            return 0.0
        return v.preempt_delay if v.preempt_delay is not None else PROFILES[v.profile].preempt_delay

    def vrrp(self) -> tuple[int, float, str | None]:
        v = self.spec.vrrp
        profile = PROFILES[v.profile]
        version, advert = profile.version, profile.advert_int
        if v.version is not None:
            version = v.version
        if v.advert_int is not None:
            advert = v.advert_int
        if version == 2:
            if advert < 1 or advert != int(advert):
                self.error(
                    "vrrp.advert_int",
                    f"VRRPv2 adverts are whole seconds (got {shown(advert)}); keepalived would "
                    "round it. Use vrrp.profile: fast (VRRPv3) for sub-second adverts",
                )
            elif advert > 255:
                self.error("vrrp.advert_int", f"VRRPv2 allows 1..255 s (got {shown(advert)})")
        elif not 0.01 <= advert <= 40.95 or round(advert * 100) != advert * 100:
            self.error(
                "vrrp.advert_int",
                f"VRRPv3 allows 0.01..40.95 s in 0.01 steps (got {shown(advert)})",
            )
        if 6 in self.families() and version == 2 and not 0.01 <= advert <= 40.95:
            self.error(
                "vrrp.advert_int",
                f"IPv6 VIPs run VRRPv3, which allows 0.01..40.95 s (got {shown(advert)})",
            )
        password: str | None = None
        if v.auth is not None and 6 in self.families() and version == 2:
            self.error(
                "vrrp.auth",
                "IPv6 VIPs run VRRPv3, which has no authentication; drop vrrp.auth "
                "(unicast with check_unicast_src protects the peers)",
            )
        if v.auth is not None:
            if version == 3:
                self.error(
                    "vrrp.auth",
                    "VRRPv3 has no authentication; drop vrrp.auth (unicast with "
                    "check_unicast_src protects the peers) or use VRRPv2",
                )
            if v.auth.password is not None and v.auth.password_file is not None:
                self.error("vrrp.auth", "give password or password_file, not both")
            if v.auth.password is not None:
                password = v.auth.password.get_secret_value()
            elif v.auth.password_file is not None:
                pf = v.auth.password_file
                pf = pf if pf.is_absolute() else self.path.parent / pf
                try:
                    raw = read_input(pf, "password file", limit=4096, error=SpecError)
                    password = raw.decode("utf-8").strip()
                except SpecError as e:
                    self.error("vrrp.auth.password_file", str(e))
                except UnicodeDecodeError:
                    self.error("vrrp.auth.password_file", f"{pf}: not UTF-8 text")
            else:
                self.error("vrrp.auth", "PASS auth needs password or password_file")
            if password is not None:
                if not password:
                    self.error("vrrp.auth.password", "empty password")
                elif len(password) > VRRP_PASS_MAX:
                    self.error(
                        "vrrp.auth.password",
                        f"longer than {VRRP_PASS_MAX} characters; keepalived cuts PASS auth "
                        f"to {VRRP_PASS_MAX}, so peers could disagree",
                    )
                else:
                    try:
                        kinds.vrrp_password(password)
                    except ValueError as e:
                        self.error("vrrp.auth.password", str(e))
        return version, advert, password

    def frontends(self, vips: Sequence[ResolvedVip], lbs: Sequence[Host]) -> list[ResolvedFrontend]:
        out: list[ResolvedFrontend] = []
        # per VIP name its first instance; a dual-stack VIP's second (IPv6) one binds beside it
        by_name: dict[str, ResolvedVip] = {}
        ipv6: dict[str, str] = {}
        for v in vips:
            if v.name in by_name:
                ipv6[v.name] = v.address
            else:
                by_name[v.name] = v
        lb_names = {h.name for h in lbs}
        binds: dict[tuple[str, int], str] = {}
        needs: dict[str, bool] = {}
        if not self.spec.frontends:
            self.error("frontends", "no frontends: define at least apiserver")
        for name, fe in self.spec.frontends.items():
            key = f"frontends.{name}"
            vip = by_name.get(fe.vip, by_name.get("internal"))
            if vip is None:
                continue
            members = self.group(fe.backends)
            if members is None:
                hint = _role_hint(self.inv, fe.backends)
                self.error(
                    f"{key}.backends",
                    f"group '{fe.backends}' is not in {self.inv_file}{hint}",
                )
                continue
            if not members:
                self.error(
                    f"{key}.backends", f"group '{fe.backends}' in {self.inv_file} has no hosts"
                )
                continue
            backends: list[Backend] = []
            for h in members:
                if h.ip is None:
                    self.error(f"host {h.name}", "backend has no address: set ip=", inventory=True)
                    continue
                # An address, not a DNS name: HAProxy would resolve a name at every start
                # and refuse to run when the resolver does not answer.
                try:
                    backends.append(Backend(h.name, kinds.host_ip(h.ip), fe.backend_port))
                except ValueError as e:
                    self.error(f"host {h.name}", f"ip {e} (set ip=)", inventory=True)
            address6 = ipv6.get(vip.name)
            for address in (vip.address, address6):
                if address is None:
                    continue
                bind = (address, fe.port)
                if bind in binds:
                    self.error(
                        f"{key}.port",
                        f"{kinds.hostport(address, fe.port)} is already the bind of "
                        f"frontends.{binds[bind]}",
                    )
                binds[bind] = name
            needs[name] = self.colocation(name, fe, members, lb_names)
            mode = fe.mode or ("http" if name == "console" else "tcp")
            check = fe.check or (
                "readyz" if name == "apiserver" else "http" if mode == "http" else "tcp"
            )
            out.append(
                ResolvedFrontend(
                    name,
                    vip.name,
                    vip.address,
                    fe.port,
                    mode,
                    check,
                    tuple(backends),
                    address6=address6,
                )
            )
        listen = self.listen_ports(needs)
        for i, rf in enumerate(out):
            port = listen.get(rf.name)
            if port is None:
                continue
            if needs.get(rf.name):
                self.note(
                    f"frontends.{rf.name}",
                    f"LB host(s) are also '{rf.name}' backends that hold {rf.port} on every "
                    f"address: clients keep {rf.address}:{rf.port}; HAProxy listens on "
                    f"{rf.address}:{port} and an nftables table of halb's on each LB host "
                    f"redirects {rf.port} to it while HAProxy is healthy there (set "
                    f"frontends.{rf.name}.port to another port for a separate one instead)",
                )
            if any(":" in a for a in rf.addresses):
                self.error(
                    f"frontends.{rf.name}",
                    "halb's redirect of a public port to HAProxy (LB hosts that are also "
                    f"'{rf.name}' backends) is IPv4 only for now; set frontends.{rf.name}.port "
                    "to a port the backends do not hold",
                )
            bind = (rf.address, port)
            if bind in binds:
                self.error(
                    f"frontends.{rf.name}.listen_port",
                    f"{rf.address}:{port} is already the bind of frontends.{binds[bind]}",
                )
            binds[bind] = rf.name
            out[i] = dataclasses.replace(rf, listen_port=port)
        return out

    def colocation(
        self, name: str, fe: FrontendSpec, members: Sequence[Host], lb_names: set[str]
    ) -> bool:
        """True when the backend holds the frontend's port on an LB host (the apiserver's
        0.0.0.0:6443 on a master, a NodePort on a node): HAProxy cannot bind that port
        there, so it listens on an internal port and halb's nftables table redirects the
        public one to it (halb/redirect.py)."""
        shared = [h.name for h in members if h.name in lb_names]
        if not shared or fe.port != fe.backend_port:
            return False
        return not (name == "apiserver" and self.spec.installer.apiserver_bind == "host")

    def listen_ports(self, needs: dict[str, bool]) -> dict[str, int | None]:
        """HAProxy's internal port per redirected frontend: the spec's `listen_port`, else
        9445, 9446, ... skipping every port a frontend already names."""
        taken = {p for fe in self.spec.frontends.values() for p in (fe.port, fe.backend_port)}
        taken |= {fe.listen_port for fe in self.spec.frontends.values() if fe.listen_port}
        out: dict[str, int | None] = {}
        nxt = REDIRECT_BASE_PORT
        for name, fe in self.spec.frontends.items():
            key = f"frontends.{name}.listen_port"
            if fe.listen_port is not None:
                if fe.listen_port == fe.port or fe.listen_port == fe.backend_port:
                    self.error(
                        key,
                        f"{fe.listen_port} is the frontend's own port or its backends' "
                        "port; HAProxy's internal port must be another one",
                    )
                out[name] = fe.listen_port
            elif needs.get(name):
                while nxt in taken:
                    nxt += 1
                out[name] = nxt
                taken.add(nxt)
            else:
                out[name] = None
        return out

    def sizes(self) -> None:
        etcd = self.group("etcd")
        if etcd is not None and etcd:
            n = len(etcd)
            if n == 1 or n % 2 == 0:
                tolerated = (n - 1) // 2
                better = n + 1 if n % 2 == 0 else 3
                self.warn(
                    "group etcd",
                    f"{n} etcd member(s) tolerate {tolerated} failure(s); {better} would "
                    f"tolerate {(better - 1) // 2} ({etcd_tolerance_table()})",
                    inventory=True,
                )
        cp = role_group(self.inv, Role.CONTROL_PLANE)
        masters = self.group(cp) if cp else None
        if masters:
            n = len(masters)
            if n == 1 or n % 2 == 0:
                self.warn(
                    f"group {cp}",
                    f"{n} master(s): an odd count >= 3 keeps quorum when one fails",
                    inventory=True,
                )

    def installer(self) -> None:
        ins = self.spec.installer
        if ins.kind == "command" and not ins.command:
            self.error("installer.command", "installer kind 'command' needs a command")


def _canonical(value: object) -> str:
    """An address in its canonical text (an IPv6 one has many spellings), else as given."""
    try:
        return kinds.host_ip(value)
    except ValueError:
        return str(value)


def _role_hint(inv: Inventory, name: str) -> str:
    """'; did you mean X?' for a missing group: the inventory's group of the same role
    (kube-master -> kube_control_plane), else the closest spelling."""
    role = role_of_group(name)
    if role is not None:
        group = role_group(inv, role)
        if group is not None:
            return f"; did you mean '{group}' (the {role.value} group of this inventory)?"
        alt = backend_group(inv, role)
        if alt is not None:
            return f"; this inventory has no {role.value} group: did you mean '{alt}'?"
    near = difflib.get_close_matches(name, list(inv.groups)[:10_000], n=1)
    return f"; did you mean '{near[0]}'?" if near else ""
