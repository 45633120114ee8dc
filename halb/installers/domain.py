"""Which name the installer is given for the apiserver endpoint.

Kubespray put `loadbalancer_apiserver.address apiserver_loadbalancer_domain_name` into
every node's /etc/hosts up to 2.28; 2.29 dropped all /etc/hosts handling (kubespray
commit "Do not alter etc/hosts (#12382)"), so a made-up domain no longer resolves and
kubeadm cannot reach its own endpoint. For `kind: kubespray` halb therefore writes the
VIP's address as `apiserver_loadbalancer_domain_name` unless halb.yaml sets
`installer.domain`: an address needs no resolution on any Kubespray version (on <= 2.28
the /etc/hosts line it adds maps the address to itself, which is harmless). A domain the
user sets is written as given, with a warning that DNS must resolve it on 2.29+.

KubeSphere 2.1 bundles a Kubespray that writes /etc/hosts, and KubeKey 1.x-3.x writes
its own `address domain` line, so both keep `lb.kubesphere.local`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halb.spec import InstallerSpec


def endpoint_domain(kind: str, installer: InstallerSpec, address: str) -> str:
    """The domain to write for this installer: the VIP's address where nothing resolves
    a name (Kubespray without an explicit installer.domain), else installer.domain."""
    if kind == "kubespray" and "domain" not in installer.model_fields_set:
        return address
    return installer.domain


def domain_warnings(kind: str, domain: str, address: str, source: str) -> tuple[str, ...]:
    if kind == "kubekey" and ":" in address:
        return (
            f"{source}: controlPlaneEndpoint.address is IPv6: KubeKey 1.x-3.x writes it to "
            "/etc/hosts beside the domain and kubeadm uses the domain, but when the cluster "
            "already exists (kk add nodes, upgrade) kk copies admin.conf for its own use "
            f"with server https://{address}:PORT, without brackets",
        )
    if kind != "kubespray":
        return ()
    if domain == address and ":" in address:
        return (
            f"{source}: apiserver_loadbalancer_domain_name is the IPv6 address {address}: "
            "Kubespray 2.28+ writes the endpoint as https://[ADDRESS]:PORT (ansible.utils."
            "ipwrap); older ones write it without brackets, so set installer.domain to a "
            "name there (they map it to the VIP in /etc/hosts)",
        )
    if domain == address:
        return ()
    return (
        f"{source}: apiserver_loadbalancer_domain_name is {domain!r}: Kubespray 2.29+ no "
        f"longer writes it to /etc/hosts, so your DNS must resolve it to {address} on "
        "every node (or leave installer.domain unset and halb writes the VIP's address)",
    )
