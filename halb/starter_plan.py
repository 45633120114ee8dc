"""What `halb init` puts in a starter halb.yaml for an inventory (pure but for detection).

Roles pick the groups (the names the inventory actually has), detection picks the
installer block. LB hosts that also run the apiserver or the console's NodePort keep the
public ports 6443 / 30880 (HAProxy listens on internal ports behind halb's nftables
redirect, see halb/redirect.py), with a note that says so.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from halb.detect import Installation, detect
from halb.errors import InputError
from halb.inventory import Inventory
from halb.roles import GROUP_NAMES, Role, backend_group, role_group


@dataclass(frozen=True)
class InstallerBlock:
    kind: str  # kubesphere | kubekey | kubespray | command
    config: str | None  # relative to halb.yaml
    command: str | None
    domain: str | None  # None: halb's default for the kind (see installers/endpoint.py)
    label: str


@dataclass(frozen=True)
class StarterPlan:
    cluster: str
    lb_hosts: list[str]
    lb_source: str
    apiserver_backends: str
    apiserver_port: int
    console_backends: str | None  # None: the install has no console
    console_port: int
    installer: InstallerBlock
    notes: list[str] = field(default_factory=list)
    colocated: bool = False  # the LB hosts also run the apiserver
    console_colocated: bool = False  # the LB hosts are also nodes of the console's group


def _groups_text(role: Role) -> str:
    return ", ".join(f"[{g}]" for g in GROUP_NAMES[role])


def plan_starter(
    inventory: Inventory,
    spec_dir: Path,
    cluster: str | None = None,
    found: Installation | None = None,
) -> StarterPlan:
    det = found if found is not None else detect(inventory)
    notes = [f"installer: {det.label} ({det.reason})"]
    src = inventory.source.name

    cp_group = backend_group(inventory, Role.CONTROL_PLANE)
    if cp_group is None:
        raise InputError(
            f"{inventory.source}: no control-plane group with hosts "
            f"(one of {_groups_text(Role.CONTROL_PLANE)})"
        )
    cp_names = {h.name for h in inventory.group_hosts(cp_group)}

    lb_group = role_group(inventory, Role.LB)
    lb = inventory.group_hosts(lb_group) if lb_group else []
    if lb and lb_group is not None:
        lb_hosts = [h.name for h in lb]
        lb_source = f"the [{lb_group}] group of {src}"
    else:
        lb_hosts = sorted(cp_names, key=list(inventory.hosts).index)
        lb_source = f"no LB group in {src}, so the [{cp_group}] hosts"
        notes.append(f"no [lb] group (nor [ex_lb], [ex-lb]): the [{cp_group}] hosts carry the VIP")

    for n in lb_hosts:
        if inventory.hosts[n].ip is None:
            raise InputError(
                f"{inventory.source}: LB host {n!r} has no address: set ip= or ansible_host= "
                "for it (halb binds the VIP beside that address)"
            )

    api_port = 6443
    shared = [n for n in lb_hosts if n in cp_names]
    if shared:
        notes.append(
            f"LB host(s) {', '.join(shared)} also run the apiserver (0.0.0.0:6443 there): "
            "clients keep VIP:6443; HAProxy listens on 9445 and an nftables table of "
            "halb's redirects VIP:6443 to it while HAProxy is healthy (set "
            "frontends.apiserver.port: 8443 for a separate port instead)"
        )
    console_shared = False

    console_group: str | None = None
    console_port = 30880
    if det.console:
        console_group = backend_group(inventory, Role.CLUSTER)
        if console_group is not None:
            nodes = {h.name for h in inventory.group_hosts(console_group)}
            if any(n in nodes for n in lb_hosts):
                console_shared = True
                notes.append(
                    f"LB hosts are also [{console_group}] nodes (NodePort 30880 there): "
                    "clients keep VIP:30880, redirected the same way to HAProxy on 9446"
                )

    return StarterPlan(
        cluster=cluster or _cluster_name(det.cluster),
        lb_hosts=lb_hosts,
        lb_source=lb_source,
        apiserver_backends=cp_group,
        apiserver_port=api_port,
        console_backends=console_group,
        console_port=console_port,
        installer=_installer_block(det, inventory, spec_dir, notes),
        notes=notes,
        colocated=bool(shared),
        console_colocated=console_shared,
    )


def _rel(path: Path, spec_dir: Path) -> str:
    return os.path.relpath(path.resolve(), spec_dir.resolve())


def _installer_block(
    det: Installation, inventory: Inventory, spec_dir: Path, notes: list[str]
) -> InstallerBlock:
    config = _rel(det.config, spec_dir) if det.config is not None else None
    if det.kind == "kubesphere":
        return InstallerBlock("kubesphere", config, None, "lb.kubesphere.local", det.label)
    if det.kind == "kubekey":
        domain = None if det.label == "KubeKey v4" else "lb.kubesphere.local"
        return InstallerBlock("kubekey", config, None, domain, det.label)
    if det.kind == "kubespray":
        return InstallerBlock("kubespray", config, None, None, det.label)
    # kubeasz: halb launches it, but does not edit its files (see README).
    inv_dir = _rel(inventory.source.parent, spec_dir)
    if det.label.startswith("kubeasz 3"):
        command = f"ezctl setup {shlex.quote(inventory.source.resolve().parent.name)} all"
    else:
        inv = shlex.quote(inventory.source.name)
        command = f"cd {shlex.quote(inv_dir)} && ansible-playbook -i {inv} 90.setup.yml"
    if det.label.startswith("kubeasz 3"):
        notes.append(
            "kubeasz: halb does not edit its config; put the VIP in MASTER_CERT_HOSTS "
            "(config.yml) so the apiserver certificate covers it"
        )
    else:
        notes.append(
            "kubeasz 1.x-2.x: halb does not edit its files; set MASTER_IP / KUBE_APISERVER "
            "to the VIP and port, and do not run kubeasz's own lb / ex-lb roles (its "
            "haproxy and keepalived would sit on halb's hosts)"
        )
    return InstallerBlock("command", None, command, None, det.label)


def _cluster_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", raw).strip("-._")[:63]
    return name or "k8s-ha"
