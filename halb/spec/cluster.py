"""The resolved cluster: what render, deploy and the probes work from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from halb import kinds
from halb.inventory import Host, Inventory
from halb.spec.findings import Finding
from halb.spec.model import Spec


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
    family: int = 4  # 6: a VRRPv3 instance of its own (dual-stack VIPs have one per family)

    @property
    def label(self) -> str:
        """The VIP's name, with a 6 for an IPv6 one ("internal6"): unique per VIP and
        family, where the name is shared by a dual-stack VIP's two addresses."""
        return self.name if self.family == 4 else f"{self.name}6"

    @property
    def instance(self) -> str:
        return f"halb_{self.label}"


@dataclass(frozen=True)
class ResolvedFrontend:
    name: str
    vip_name: str
    address: str  # the VIP this frontend binds
    port: int
    mode: Literal["tcp", "http"]
    check: Literal["readyz", "http", "tcp"]
    backends: tuple[Backend, ...]
    # HAProxy's bind when the public port is redirected to it (see halb/redirect.py);
    # None: HAProxy binds `port` on the VIP itself
    listen_port: int | None = None
    # dual-stack: the frontend's IPv6 VIP beside its IPv4 `address` (same port, same backends)
    address6: str | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address,) if self.address6 is None else (self.address, self.address6)

    @property
    def bind_port(self) -> int:
        return self.listen_port if self.listen_port is not None else self.port


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
    failback_hold: float = 3.0  # seconds a returning host is healthy before it takes back
    failback_grace: float = 10.0  # the failback bridge's longest life after the move

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

    def host_address(self, host: Host, family: int) -> str | None:
        """The LB host's address of one family: `ip` when it is of that family, else its
        `ip6` for IPv6 (a dual-stack host's second address, as Kubespray names it)."""
        for value in (host.ip, host.vars.get("ip6") if family == 6 else None):
            try:
                ip = kinds.host_ip(value)
            except ValueError:
                continue
            if kinds.family(ip) == family:
                return ip
        return None

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(sorted({v.family for v in self.vips}))

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
        return f"http://{kinds.hostport(fe.address, fe.port)}"

    @property
    def redirected(self) -> tuple[ResolvedFrontend, ...]:
        """Frontends whose public port halb's nftables table redirects to HAProxy."""
        return tuple(f for f in self.frontends if f.listen_port is not None)

    @cached_property
    def lb_host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.lb_hosts)
