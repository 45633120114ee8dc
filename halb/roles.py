"""Roles over group names: which inventory groups play control plane, workers, etcd, LB.

Installers name the same roles differently: KubeSphere 2.1 and Kubespray before 2.16 say
`kube-master` / `kube-node` / `k8s-cluster`, Kubespray 2.16+ `kube_control_plane` /
`kube_node` / `k8s_cluster`, kubeasz 3.x `kube_master` / `kube_node`, KubeKey's role
groups `master` or `control-plane` / `worker` (v4: `kube_control_plane` / `kube_worker`).
halb looks a role up by those names, in
that order of preference, and uses whichever groups the inventory actually has. Pure.
"""

from __future__ import annotations

from enum import Enum

from halb.inventory import Host, Inventory


class Role(Enum):
    CONTROL_PLANE = "control plane"
    WORKERS = "workers"
    ETCD = "etcd"
    CLUSTER = "cluster"
    LB = "lb"


# Most specific first: an inventory that has two of them (a Kubespray inventory in the
# middle of its rename) reads the first.
GROUP_NAMES: dict[Role, tuple[str, ...]] = {
    Role.CONTROL_PLANE: (
        "kube_control_plane",
        "kube-master",
        "kube_master",
        "kube-controlplane",
        "control-plane",
        "master",
    ),
    Role.WORKERS: ("kube_node", "kube-node", "kube_worker", "worker", "node"),
    Role.ETCD: ("etcd",),
    Role.CLUSTER: ("k8s_cluster", "k8s-cluster"),
    # kubeasz's ex_lb/ex-lb is the external LB pair in front of the masters: halb's place.
    Role.LB: ("lb", "ex_lb", "ex-lb"),
}


def role_groups(inventory: Inventory, role: Role) -> list[str]:
    """The role's groups that the inventory defines, most specific name first."""
    return [g for g in GROUP_NAMES[role] if g in inventory.groups]


def role_group(inventory: Inventory, role: Role) -> str | None:
    """The first group of the role that has hosts, else the first defined, else None."""
    groups = role_groups(inventory, role)
    for g in groups:
        if inventory.group_hosts(g):
            return g
    return groups[0] if groups else None


def role_hosts(inventory: Inventory, role: Role) -> list[Host]:
    """The hosts of the role; the cluster is control plane + workers when no group says it."""
    group = role_group(inventory, role)
    if group is not None:
        hosts = inventory.group_hosts(group)
        if hosts or role is not Role.CLUSTER:
            return hosts
    if role is Role.CLUSTER:
        names: set[str] = set()
        for part in (Role.CONTROL_PLANE, Role.WORKERS):
            names.update(h.name for h in role_hosts(inventory, part))
        return [h for n, h in inventory.hosts.items() if n in names]
    return []


def role_of_group(name: str) -> Role | None:
    """The role a group name stands for in some installer, if any."""
    for role, names in GROUP_NAMES.items():
        if name in names:
            return role
    return None


def backend_group(inventory: Inventory, role: Role) -> str | None:
    """The group a frontend should name for the role's hosts (cluster falls back to
    workers, then control plane: a NodePort answers on every node)."""
    order = [role]
    if role is Role.CLUSTER:
        order += [Role.WORKERS, Role.CONTROL_PLANE]
    for r in order:
        g = role_group(inventory, r)
        if g is not None and inventory.group_hosts(g):
            return g
    return None
