"""halb.yaml: the cluster spec, its validation, and the resolved cluster model.

Pure apart from reading the spec, the inventory and an optional password file.
"""

from __future__ import annotations

import difflib
import ipaddress
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
)

from halb import kinds, yamlload
from halb.errors import InventoryError, SpecError
from halb.files import read_input
from halb.inventory import Host, Inventory, load_inventory
from halb.kinds import shown
from halb.roles import GROUP_NAMES, Role, backend_group, role_group, role_of_group

Level = Literal["error", "warning"]

DEFAULT_DOMAIN = "lb.kubesphere.local"


@dataclass(frozen=True)
class Profile:
    """VRRP and health-check timing a profile stands for (docs/profiles.md has the numbers)."""

    version: int
    advert_int: float
    top_priority: int  # the first LB host's; the skew (256 - priority) / 256 x advert
    step: int  # between neighbouring hosts: small keeps every backup's skew small
    preempt_delay: float  # a returning host waits this long before it takes a VIP back
    health: tuple[str, int, int] | None = None  # HAProxy inter/fall/rise unless given


PROFILES: Mapping[str, Profile] = {
    # conservative: no false failover on a busy, lossy segment
    "default": Profile(2, 1.0, 150, 50, 0.0),
    # near the floor: 30 ms adverts, priorities near 255 so the skew is below a millisecond
    "fast": Profile(3, 0.03, 254, 2, 3.0, ("1s", 2, 2)),
}
VRRP_PASS_MAX = 8  # keepalived truncates PASS auth to 8 characters
LOWEST_DEFAULT_PRIORITY = 50  # default priorities stop here, so the track weight can pass
TRACK_MARGIN = 10  # the check's weight exceeds the priority span by this much
TRACK_WEIGHT_MAX = 253  # keepalived's limit for a vrrp_script weight


# --------------------------------------------------------------------------- the file


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _kind(check: Callable[[Any], object]) -> AfterValidator:
    """Run a halb.kinds check; the value itself is kept as given."""

    def run(value: Any) -> Any:
        check(value)
        return value

    return AfterValidator(run)


def _no_nul(p: Path) -> Path:
    if "\0" in str(p):
        raise ValueError("a path cannot contain a NUL character")
    return p


def _strict_int(v: Any) -> Any:
    if type(v) is not int:
        raise ValueError(f"must be a whole number, not {kinds.shown(v)}")
    return v


# Every value that reaches a rendered file has a kind, checked here (halb.kinds); numbers
# are strict so `port: true` or `priority: "100"` is an error, not 1 or 100.
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Name = Annotated[str, Strict(), _kind(kinds.host_name)]
FilePath = Annotated[Path, _kind(_no_nul)]
VipAddress = Annotated[ipaddress.IPv4Address, BeforeValidator(kinds.vip_address)]
Interface = Annotated[str, Strict(), _kind(kinds.interface)]
FrontendName = Annotated[str, _kind(kinds.proxy_name)]


class VipSpec(_Model):
    address: VipAddress
    interface: Interface
    router_id: Annotated[int, Strict()] | None = None
    subnet: ipaddress.IPv4Network | None = None
    priorities: dict[Name, Annotated[int, Strict()]] | None = None


class VipsSpec(_Model):
    internal: VipSpec
    external: VipSpec | None = None


class FrontendSpec(_Model):
    vip: Literal["internal", "external"] = "internal"
    port: Port
    backends: Annotated[str, Strict(), _kind(kinds.group_name)]
    backend_port: Port
    mode: Literal["tcp", "http"] | None = None
    check: Literal["readyz", "http", "tcp"] | None = None


class AuthSpec(_Model):
    type: Literal["PASS"] = "PASS"
    password: SecretStr | None = None
    password_file: FilePath | None = None


class VrrpSpec(_Model):
    profile: Literal["default", "fast"] = "default"
    version: Annotated[Literal[2, 3], BeforeValidator(_strict_int)] | None = None
    advert_int: Annotated[float, Strict(), _kind(kinds.finite)] | None = None
    unicast: Annotated[bool, Strict()] = True
    nopreempt: Annotated[bool, Strict()] = False
    # default: the profile's
    preempt_delay: Annotated[float, Strict(), _kind(kinds.finite)] | None = Field(
        default=None, ge=0, le=1000
    )
    auth: AuthSpec | None = None


class HealthSpec(_Model):
    inter: Annotated[str, Strict(), _kind(kinds.duration_ms)] = "2s"
    fall: Annotated[int, Strict(), Field(ge=1, le=100)] = 3
    rise: Annotated[int, Strict(), Field(ge=1, le=100)] = 2


class InstallerSpec(_Model):
    kind: Literal["kubesphere", "kubekey", "kubespray", "command"] = "kubesphere"
    config: FilePath | None = None
    command: str | None = None
    domain: Annotated[str, Strict(), _kind(kinds.dns_name)] = DEFAULT_DOMAIN
    apiserver_bind: Literal["any", "host"] = "any"


def _default_frontends() -> dict[str, FrontendSpec]:
    return {
        "apiserver": FrontendSpec(
            vip="internal", port=6443, backends="kube-master", backend_port=6443
        ),
        "console": FrontendSpec(
            vip="external", port=30880, backends="k8s-cluster", backend_port=30880
        ),
    }


class Spec(_Model):
    cluster: Annotated[str, Strict(), _kind(kinds.cluster_name)]
    inventory: FilePath
    lb_hosts: list[Name] | None = None
    vips: VipsSpec
    frontends: dict[FrontendName, FrontendSpec] = Field(default_factory=_default_frontends)
    vrrp: VrrpSpec = VrrpSpec()
    health: HealthSpec = HealthSpec()
    installer: InstallerSpec = InstallerSpec()


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    level: Level
    where: str  # "halb.yaml: vips.internal.router_id" or "hosts.ini: host lb1"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "where": self.where, "message": self.message}


class SpecInvalid(SpecError):
    """Raised with every error finding; the message lists them, one per line."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("\n".join(str(f) for f in self.findings if f.level == "error"))


# --------------------------------------------------------------------------- resolved


@dataclass(frozen=True)
class Backend:
    name: str
    address: str
    port: int


@dataclass(frozen=True)
class ResolvedVip:
    name: str  # "internal" | "external"
    address: str
    interface: str
    router_id: int
    priorities: Mapping[str, int]  # LB host -> priority, all distinct
    preempt_delay: float = 0.0  # seconds; 0 = none (or nopreempt)

    @property
    def instance(self) -> str:
        return f"halb_{self.name}"


@dataclass(frozen=True)
class ResolvedFrontend:
    name: str
    vip_name: str
    address: str  # the VIP this frontend binds
    port: int
    mode: Literal["tcp", "http"]
    check: Literal["readyz", "http", "tcp"]
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class Cluster:
    spec: Spec
    config_path: Path
    inventory: Inventory
    lb_hosts: tuple[Host, ...]
    vips: tuple[ResolvedVip, ...]
    frontends: tuple[ResolvedFrontend, ...]
    vrrp_version: int
    advert_int: float
    track_weight: int
    auth_password: str | None = field(repr=False)
    warnings: tuple[Finding, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent

    @property
    def name(self) -> str:
        return self.spec.cluster

    def service_manager(self, host: Host) -> str:
        return str(host.vars.get("halb_service_manager", "systemd"))

    def host_ip(self, host: Host) -> str:
        ip = host.ip
        assert ip is not None  # resolve() refuses LB hosts without one
        return ip

    def frontend(self, name: str) -> ResolvedFrontend | None:
        return next((f for f in self.frontends if f.name == name), None)

    @property
    def vip_addresses(self) -> list[str]:
        return [v.address for v in self.vips]

    @property
    def apiserver_endpoint(self) -> tuple[str, int]:
        fe = self.frontend("apiserver")
        if fe is None:
            return self.vips[0].address, 6443
        return fe.address, fe.port

    @property
    def console_url(self) -> str:
        fe = self.frontend("console")
        if fe is None:
            return ""
        return f"http://{fe.address}:{fe.port}"

    @cached_property
    def lb_host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.lb_hosts)


# --------------------------------------------------------------------------- loading


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        raise SpecError(f"{path}: not found (write one with `halb init -i hosts.ini --vip ADDR`)")
    raw = read_input(path, "spec", error=SpecError)
    if b"\0" in raw:
        raise SpecError(f"{path}: binary file, expected YAML")
    try:
        data = yamlload.load(raw.decode("utf-8"), unique_keys=True)
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text, expected YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}: invalid YAML{where}: {kinds.shown(problem, 200)[1:-1]}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{path}: expected a mapping of keys (cluster, inventory, vips, ...), got {kind}"
        )
    return data


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that holds the key at loc (for 'did you mean')."""
    model: type[BaseModel] | None = Spec
    parts = list(loc[:-1])
    while parts and model is not None:
        info = model.model_fields.get(str(parts.pop(0)))
        if info is None:
            return None
        ann = info.annotation
        model = _find_model(ann)
        if getattr(ann, "__origin__", None) is dict and parts:
            parts.pop(0)  # the mapping's own key, e.g. a frontend's name
    return model


def _find_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _pydantic_findings(path: Path, exc: ValidationError) -> list[Finding]:
    out: list[Finding] = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        key = ".".join(kinds.clip(str(p), 40) for p in loc) or "(top level)"
        where = f"{path.name}: {key}"
        if e["type"] == "extra_forbidden":
            model = _model_at(loc)
            valid = sorted(model.model_fields) if model else []
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            choices = f" (valid keys: {', '.join(valid)})" if valid else ""
            out.append(Finding("error", where, f"unknown key{hint}{choices}"))
        elif e["type"] == "missing":
            out.append(Finding("error", where, "required key is missing"))
        elif e["type"] == "value_error":  # a halb.kinds check: its message quotes the value
            msg = str(e["ctx"]["error"]) if "ctx" in e else e["msg"]
            out.append(Finding("error", where, msg))
        else:
            value = e.get("input")
            shown = "" if "password" in key else f" (got {kinds.shown(value)})"
            out.append(Finding("error", where, f"{e['msg']}{shown}"))
    return out


def parse_spec(path: Path, data: Mapping[str, Any]) -> Spec:
    try:
        return Spec.model_validate(dict(data))
    except ValidationError as e:
        raise SpecInvalid(_pydantic_findings(path, e)) from None


def load_cluster(path: Path) -> Cluster:
    """Read halb.yaml and its inventory, run every offline check; raise on any error."""
    cluster, findings = check(path)
    errors = [f for f in findings if f.level == "error"]
    if errors or cluster is None:
        raise SpecInvalid(errors)
    return cluster


def check(path: Path) -> tuple[Cluster | None, list[Finding]]:
    """Every offline check; returns the cluster when there is no error, and all findings."""
    path = path.resolve() if not path.is_absolute() else path
    data = read_yaml_mapping(path)
    try:
        spec = parse_spec(path, data)
    except SpecInvalid as e:
        return None, list(e.findings)
    inv_path = spec.inventory if spec.inventory.is_absolute() else path.parent / spec.inventory
    try:
        inventory = load_inventory(inv_path)
    except InventoryError as e:
        return None, [Finding("error", f"{path.name}: inventory", str(e))]
    return resolve(spec, path, inventory)


# --------------------------------------------------------------------------- checks


def derive_router_id(cluster: str, address: str) -> int:
    """Stable 1..255 from cluster name and VIP, so two clusters on one segment differ."""
    return zlib.crc32(f"{cluster}/{address}".encode()) % 255 + 1


def default_priorities(names: Sequence[str], profile: Profile | None = None) -> dict[str, int]:
    """Distinct priorities, first host highest: 150 down to 50, or the profile's spacing."""
    p = profile or PROFILES["default"]
    if len(names) <= 1:
        return {n: p.top_priority for n in names}
    # the lowest stays >= 50 so the track weight can still take any host below it
    step = max(1, min(p.step, (p.top_priority - LOWEST_DEFAULT_PRIORITY) // (len(names) - 1)))
    return {n: p.top_priority - i * step for i, n in enumerate(names)}


def etcd_tolerance_table() -> str:
    rows = [(n, (n - 1) // 2) for n in range(1, 8)]
    return "members/failures tolerated: " + ", ".join(f"{n}/{t}" for n, t in rows)


class _Checker:
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
        for h in self.inv.hosts.values():
            ip = h.ip
            if ip is None:
                continue
            if ip in seen:
                self.error(
                    f"host {h.name}",
                    f"ip {ip} is also the address of host {seen[ip]}",
                    inventory=True,
                )
            seen.setdefault(ip, h.name)
        for h in lbs:
            ip = h.ip
            if ip is None:
                self.error(
                    f"host {h.name}",
                    "LB host has no address: set ip= (or ansible_host=) for it",
                    inventory=True,
                )
                continue
            # unicast_src_ip and unicast_peer take an IPv4 address; without unicast the
            # address is not rendered, but it is still checked for its kind.
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
            port = h.vars.get("ansible_port", h.vars.get("ansible_ssh_port", 22))
            if type(port) is str and port.isdigit():
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

    def vips(self, lbs: Sequence[Host]) -> list[ResolvedVip]:
        names = [h.name for h in lbs]
        out: list[ResolvedVip] = []
        host_ips = {h.ip: h.name for h in self.inv.hosts.values() if h.ip}
        specs = [("internal", self.spec.vips.internal)]
        if self.spec.vips.external and (
            self.spec.vips.external.address != self.spec.vips.internal.address
        ):
            specs.append(("external", self.spec.vips.external))
        used_ids: dict[int, str] = {}
        for name, v in specs:
            key = f"vips.{name}"
            addr = str(v.address)
            if addr in host_ips:
                self.error(
                    f"{key}.address",
                    f"{addr} is the address of host {host_ips[addr]}; a VIP must be a free address",
                )
            if v.subnet is not None:
                if v.address not in v.subnet:
                    self.error(f"{key}.address", f"{addr} is outside {key}.subnet {v.subnet}")
                elif v.subnet.prefixlen <= 30 and v.address in (
                    v.subnet.network_address,
                    v.subnet.broadcast_address,
                ):
                    what = "network" if v.address == v.subnet.network_address else "broadcast"
                    self.error(f"{key}.address", f"{addr} is the {what} address of {v.subnet}")
                for h in lbs:
                    try:
                        hip = ipaddress.IPv4Address(h.ip or "")
                    except ValueError:
                        continue
                    if hip not in v.subnet:
                        self.error(
                            f"{key}.subnet",
                            f"LB host {h.name} ({hip}) is outside {v.subnet}: "
                            "the VIP must be on the LB hosts' segment",
                        )
            if v.router_id is not None:
                if not 1 <= v.router_id <= 255:
                    self.error(f"{key}.router_id", f"must be 1..255 (got {v.router_id})")
                    continue
                rid = v.router_id
            else:
                rid = derive_router_id(self.spec.cluster, addr)
                while rid in used_ids:  # internal and external must differ
                    rid = rid % 255 + 1
            if rid in used_ids:
                self.error(
                    f"{key}.router_id",
                    f"{rid} is already the router id of vips.{used_ids[rid]}; "
                    "each VIP needs its own",
                )
            used_ids[rid] = name
            prios = self.priorities(key, v, names)
            out.append(ResolvedVip(name, addr, v.interface, rid, prios, self.preempt_delay()))
        return out

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
                self.error(f"{key}.priorities.{n}", f"must be 1..254 (got {p})")
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
                    f"VRRPv2 adverts are whole seconds (got {advert}); keepalived would "
                    "round it. Use vrrp.profile: fast (VRRPv3) for sub-second adverts",
                )
            elif advert > 255:
                self.error("vrrp.advert_int", f"VRRPv2 allows 1..255 s (got {advert})")
        elif not 0.01 <= advert <= 40.95 or round(advert * 100) != advert * 100:
            self.error(
                "vrrp.advert_int", f"VRRPv3 allows 0.01..40.95 s in 0.01 steps (got {advert})"
            )
        password: str | None = None
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
        by_name = {v.name: v for v in vips}
        lb_names = {h.name for h in lbs}
        binds: dict[tuple[str, int], str] = {}
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
                    backends.append(Backend(h.name, kinds.address(h.ip), fe.backend_port))
                except ValueError as e:
                    self.error(f"host {h.name}", f"ip {e} (set ip=)", inventory=True)
            bind = (vip.address, fe.port)
            if bind in binds:
                self.error(
                    f"{key}.port",
                    f"{vip.address}:{fe.port} is already the bind of frontends.{binds[bind]}",
                )
            binds[bind] = name
            self.colocation(key, name, fe, members, lb_names)
            mode = fe.mode or ("http" if name == "console" else "tcp")
            check = fe.check or (
                "readyz" if name == "apiserver" else "http" if mode == "http" else "tcp"
            )
            out.append(
                ResolvedFrontend(name, vip.name, vip.address, fe.port, mode, check, tuple(backends))
            )
        return out

    def colocation(
        self, key: str, name: str, fe: FrontendSpec, members: Sequence[Host], lb_names: set[str]
    ) -> None:
        """A frontend on the backend's own port cannot bind where the backend holds 0.0.0.0."""
        shared = [h.name for h in members if h.name in lb_names]
        if not shared or fe.port != fe.backend_port:
            return
        if name == "apiserver" and self.spec.installer.apiserver_bind == "host":
            return
        hosts = ", ".join(shared)
        if name == "apiserver":
            self.error(
                f"{key}.port",
                f"LB host(s) {hosts} also run the apiserver, which holds 0.0.0.0:{fe.port}, so "
                f"HAProxy cannot bind {fe.port} there. Either set {key}.port: 8443 (halb "
                "writes that port into the installer config), or set installer.apiserver_bind: "
                "host (the installer binds the apiserver to each master's own address and "
                "HAProxy binds the VIP only)",
            )
        else:
            self.error(
                f"{key}.port",
                f"LB host(s) {hosts} are also '{fe.backends}' backends listening on "
                f"0.0.0.0:{fe.backend_port}, so HAProxy cannot bind {fe.port} there; set "
                f"{key}.port to another port (e.g. 8880)",
            )

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


def resolve(spec: Spec, path: Path, inventory: Inventory) -> tuple[Cluster | None, list[Finding]]:
    c = _Checker(spec, path, inventory)
    lbs = c.lb_hosts()
    c.host_addresses(lbs)
    if len(lbs) == 1:
        c.warn("lb_hosts", f"one LB host ({lbs[0].name}): the VIP has no failover (no HA)")
    vips = c.vips(lbs)
    prios = [p for v in vips for p in v.priorities.values() if 1 <= p <= 254]
    gap = (max(prios) - min(prios)) if prios else 0
    if gap + TRACK_MARGIN > TRACK_WEIGHT_MAX:
        c.error(
            "vips",
            f"the priorities span {gap} ({min(prios)}..{max(prios)}); the HAProxy check's "
            f"weight must exceed the span by {TRACK_MARGIN} and keepalived allows at most "
            f"{TRACK_WEIGHT_MAX}, so keep the span <= {TRACK_WEIGHT_MAX - TRACK_MARGIN}",
        )
    version, advert, password = c.vrrp()
    frontends = c.frontends(vips, lbs)
    c.sizes()
    c.installer()
    c.findings = list(dict.fromkeys(c.findings))  # a host in two frontends: one message
    if any(f.level == "error" for f in c.findings):
        return None, c.findings
    profile = PROFILES[spec.vrrp.profile]
    if profile.health and "health" not in spec.model_fields_set:
        inter, fall, rise = profile.health  # the profile's checks unless the user set any
        spec = spec.model_copy(update={"health": HealthSpec(inter=inter, fall=fall, rise=rise)})
    cluster = Cluster(
        spec=spec,
        config_path=path,
        inventory=inventory,
        lb_hosts=tuple(lbs),
        vips=tuple(vips),
        frontends=tuple(frontends),
        vrrp_version=version,
        advert_int=advert,
        # crosses the gap: a sick top host falls below every peer
        track_weight=-(gap + TRACK_MARGIN),
        auth_password=password,
        warnings=tuple(f for f in c.findings if f.level == "warning"),
    )
    return cluster, c.findings
