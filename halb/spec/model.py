"""halb.yaml as pydantic models: every key, its type and its kind."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
)

from halb import kinds

DEFAULT_DOMAIN = "lb.kubesphere.local"


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


def _millis(v: float) -> float:
    """Seconds in whole milliseconds: keepalived reads a plain decimal, and a float as
    small as 5e-324 would be written in exponent form."""
    if v != 0 and (v < 0.001 or round(v, 3) != v):
        raise ValueError(f"must be 0 or whole milliseconds from 0.001 (got {kinds.shown(v)})")
    return v


def _strict_int(v: Any) -> Any:
    if type(v) is not int:
        raise ValueError(f"must be a whole number, not {kinds.shown(v)}")
    return v


# Every value that reaches a rendered file has a kind, checked here (halb.kinds); numbers
# are strict so `port: true` or `priority: "100"` is an error, not 1 or 100.
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Name = Annotated[str, Strict(), _kind(kinds.host_name)]
FilePath = Annotated[Path, _kind(_no_nul)]
VipAddress = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address, BeforeValidator(kinds.vip_address)
]
Vip6Address = Annotated[ipaddress.IPv6Address, BeforeValidator(kinds.ipv6_vip)]
Interface = Annotated[str, Strict(), _kind(kinds.interface)]
FrontendName = Annotated[str, _kind(kinds.proxy_name)]


class VipSpec(_Model):
    address: VipAddress  # IPv4 or IPv6
    interface: Interface
    router_id: Annotated[int, Strict()] | None = None
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    priorities: dict[Name, Annotated[int, Strict()]] | None = None
    # dual-stack: the same VIP's IPv6 address beside an IPv4 `address`, held by its own
    # VRRPv3 instance (keepalived cannot mix families in one instance)
    address6: Vip6Address | None = None
    router_id6: Annotated[int, Strict()] | None = None
    subnet6: ipaddress.IPv6Network | None = None


class VipsSpec(_Model):
    internal: VipSpec
    external: VipSpec | None = None


class FrontendSpec(_Model):
    vip: Literal["internal", "external"] = "internal"
    port: Port
    backends: Annotated[str, Strict(), _kind(kinds.group_name)]
    backend_port: Port
    # HAProxy's own port when `port` is held on the LB host by the backend itself (the
    # apiserver's 0.0.0.0:6443, a NodePort): halb's nftables table sends VIP:port there.
    # Default: 9445, 9446, ... in frontend order, for the frontends that need one.
    listen_port: Port | None = None
    mode: Literal["tcp", "http"] | None = None
    check: Literal["readyz", "http", "tcp"] | None = None


class AuthSpec(_Model):
    type: Literal["PASS"] = "PASS"
    password: SecretStr | None = None
    password_file: FilePath | None = None


class VrrpSpec(_Model):
    profile: Literal["default", "fast", "emulated"] = "default"
    version: Annotated[Literal[2, 3], BeforeValidator(_strict_int)] | None = None
    advert_int: Annotated[float, Strict(), _kind(kinds.finite)] | None = None
    unicast: Annotated[bool, Strict()] = True
    nopreempt: Annotated[bool, Strict()] = False
    # default: the profile's
    preempt_delay: Annotated[float, Strict(), _kind(kinds.finite), _kind(_millis)] | None = Field(
        default=None, ge=0, le=1000
    )
    # a returning host's healthy time before it takes its VIPs back, and the bridge's
    # longest life after that (docs/profiles.md); default: the profile's
    failback_hold: Annotated[float, Strict(), _kind(kinds.finite), _kind(_millis)] | None = Field(
        default=None, ge=0, le=1000
    )
    failback_grace: Annotated[float, Strict(), _kind(kinds.finite), _kind(_millis)] | None = Field(
        default=None, ge=1, le=60
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
    # a list, not a !!set: a set's order (and so the priorities) would follow the hash seed
    lb_hosts: Annotated[list[Name], Strict()] | None = None
    vips: VipsSpec
    frontends: dict[FrontendName, FrontendSpec] = Field(default_factory=_default_frontends)
    vrrp: VrrpSpec = VrrpSpec()
    health: HealthSpec = HealthSpec()
    installer: InstallerSpec = InstallerSpec()
