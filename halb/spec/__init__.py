"""halb.yaml: the cluster spec, its validation, and the resolved cluster model.

Pure apart from reading the spec, the inventory and an optional password file.
model (the file's keys) -> load (read, parse) -> checks (against the inventory) ->
cluster (the resolved model); profiles hold the VRRP timing, findings what a check says.
"""

from __future__ import annotations

from halb.spec.checks import Checker, etcd_tolerance_table
from halb.spec.cluster import Backend, Cluster, ResolvedFrontend, ResolvedVip
from halb.spec.findings import Finding, Severity, SpecInvalid
from halb.spec.load import check, load_cluster, parse_spec, read_yaml_mapping, resolve
from halb.spec.model import (
    DEFAULT_DOMAIN,
    AuthSpec,
    FrontendSpec,
    HealthSpec,
    InstallerSpec,
    Spec,
    VipSpec,
    VipsSpec,
    VrrpSpec,
)
from halb.spec.profiles import (
    LOWEST_DEFAULT_PRIORITY,
    PROFILES,
    TRACK_MARGIN,
    TRACK_WEIGHT_MAX,
    VRRP_PASS_MAX,
    Profile,
    default_priorities,
    derive_router_id,
)

__all__ = [
    "DEFAULT_DOMAIN",
    "LOWEST_DEFAULT_PRIORITY",
    "PROFILES",
    "TRACK_MARGIN",
    "TRACK_WEIGHT_MAX",
    "VRRP_PASS_MAX",
    "AuthSpec",
    "Backend",
    "Checker",
    "Cluster",
    "Finding",
    "FrontendSpec",
    "HealthSpec",
    "InstallerSpec",
    "Profile",
    "ResolvedFrontend",
    "ResolvedVip",
    "Severity",
    "Spec",
    "SpecInvalid",
    "VipSpec",
    "VipsSpec",
    "VrrpSpec",
    "check",
    "default_priorities",
    "derive_router_id",
    "etcd_tolerance_table",
    "load_cluster",
    "parse_spec",
    "read_yaml_mapping",
    "resolve",
]
