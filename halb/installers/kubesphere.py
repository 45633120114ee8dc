"""KubeSphere 2.1 `conf/common.yaml`: the LB endpoint for its bundled Kubespray.

The file carries a commented-out `HA(Highly Available) loadbalancer example config`; it
stays a comment and the real keys go right after it, so a diff shows only added lines.
"""

from __future__ import annotations

from halb.errors import InputError
from halb.installers.edit import EditResult, LBSettings
from halb.installers.kubespray import edit_kubespray_vars


def edit_common_yaml(text: str, settings: LBSettings, source: str) -> EditResult:
    """Set apiserver_loadbalancer_domain_name, loadbalancer_apiserver and the SAN list."""
    if ":" in settings.address:
        # Kubernetes runs IPv6-only clusters from 1.18 (its dual-stack GA post says so);
        # KubeSphere 2.1 installs 1.16.
        raise InputError(
            f"{source}: the apiserver endpoint {settings.address} is IPv6, and KubeSphere 2.1 "
            "installs Kubernetes 1.16, which cannot run an IPv6 cluster (Kubernetes runs "
            "IPv6-only clusters from 1.18): give the apiserver frontend an IPv4 VIP "
            "(vips.internal.address; address6 beside it keeps an IPv6 one)"
        )
    return edit_kubespray_vars(text, settings, source)
