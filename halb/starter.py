"""`halb init`: a commented starter halb.yaml from an inventory (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from halb import kinds
from halb.errors import InputError
from halb.inventory import Inventory
from halb.render import template_env
from halb.spec import derive_router_id


def starter_spec(
    inventory: Inventory,
    inventory_ref: str,
    vip: str,
    external_vip: str | None = None,
    interface: str = "eth0",
    cluster: str | None = None,
) -> tuple[str, list[str]]:
    """The halb.yaml text and notes for the user."""
    for flag, value in (("--vip", vip), ("--external-vip", external_vip)):
        if value is None:
            continue
        try:
            kinds.vip_address(value)
        except ValueError as e:
            raise InputError(f"{flag}: {e}") from None
    _flag("--interface", kinds.interface, interface)
    if cluster is not None:
        _flag("--cluster", kinds.cluster_name, cluster)
    notes: list[str] = []
    lb = inventory.group_hosts("lb") if "lb" in inventory.groups else []
    masters = inventory.group_hosts("kube-master") if "kube-master" in inventory.groups else []
    if lb:
        lb_hosts = [h.name for h in lb]
        source = f"the [lb] group of {inventory.source.name}"
        colocated = False
    elif masters:
        lb_hosts = [h.name for h in masters]
        source = f"no [lb] group in {inventory.source.name}, so the masters"
        colocated = True
        notes.append(
            "no [lb] group: the masters carry the VIP; apiserver frontend on 8443 and "
            "console on 8880 (the apiserver and node ports hold 6443 and 30880 there)"
        )
    else:
        raise InputError(
            f"{inventory.source}: no [lb] or [kube-master] group with hosts; add an [lb] group"
        )
    name = cluster or re.sub(r"[^A-Za-z0-9_.-]", "-", inventory.source.resolve().parent.name)
    name = name[:63].strip("-._") or "kubesphere-ha"
    env = template_env()
    # Values go in as quoted YAML scalars, so none can end its line or add a key;
    # text in comments is made printable for the same reason.
    env.filters["yaml"] = _yaml_scalar
    env.filters["comment"] = _comment
    text = env.get_template("halb.yaml.j2").render(
        cluster=name,
        inventory=inventory_ref,
        lb_source=source,
        lb_hosts=lb_hosts,
        vip=vip,
        external_vip=external_vip,
        interface=interface,
        router_id=derive_router_id(name, vip),
        colocated=colocated,
        apiserver_port=8443 if colocated else 6443,
        console_port=8880 if colocated else 30880,
    )
    return text, notes


def _flag(flag: str, check: Callable[[str], object], value: str) -> None:
    try:
        check(value)
    except ValueError as e:
        raise InputError(f"{flag}: {e}") from None


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", re.ASCII)


def _yaml_scalar(value: object) -> str:
    """A plain scalar when it reads back as the same string, else a double-quoted one."""
    s = str(value)
    if _PLAIN.fullmatch(s) and yaml.safe_load(s) == s:
        return s
    text: str = yaml.safe_dump(s, default_style='"', width=2**31, allow_unicode=False)
    return text.rstrip("\n")


def _comment(value: object) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(value))


def relative_ref(inventory: Path, spec_path: Path) -> str:
    try:
        return str(inventory.resolve().relative_to(spec_path.resolve().parent))
    except ValueError:
        return str(inventory.resolve())
