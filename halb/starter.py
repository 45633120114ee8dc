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
from halb.starter_plan import plan_starter


def starter_spec(
    inventory: Inventory,
    inventory_ref: str,
    vip: str,
    external_vip: str | None = None,
    interface: str = "eth0",
    cluster: str | None = None,
    spec_dir: Path | None = None,
) -> tuple[str, list[str]]:
    """The halb.yaml text and notes for the user."""
    for flag, value in (("--vip", vip), ("--external-vip", external_vip)):
        if value is not None:
            _flag(flag, kinds.vip_address, value)
    _flag("--interface", kinds.interface, interface)
    if cluster is not None:
        _flag("--cluster", kinds.cluster_name, cluster)
    plan = plan_starter(inventory, spec_dir or Path.cwd(), cluster)
    env = template_env()
    # Values go in as quoted YAML scalars, so none can end its line or add a key;
    # text in comments is made printable for the same reason.
    env.filters["yaml"] = _yaml_scalar
    env.filters["comment"] = _comment
    text = env.get_template("halb.yaml.j2").render(
        plan=plan,
        inventory=inventory_ref,
        vip=vip,
        external_vip=external_vip,
        interface=interface,
        router_id=derive_router_id(plan.cluster, vip),
    )
    return text, plan.notes


def _flag(flag: str, check: Callable[[str], object], value: str) -> None:
    try:
        check(value)
    except ValueError as e:
        raise InputError(f"{flag}: {e}") from None


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", re.ASCII)


def _yaml_scalar(value: object) -> str:
    """A plain scalar when it reads back as the same string, else a double-quoted one."""
    s = str(value)
    if _PLAIN.fullmatch(s) and _reads_back(s):
        return s
    text: str = yaml.safe_dump(s, default_style='"', width=2**31, allow_unicode=False)
    return text.rstrip("\n")


def _reads_back(s: str) -> bool:
    try:
        return bool(yaml.safe_load(s) == s)
    except (yaml.YAMLError, ValueError):  # `2024-02-30` resolves to a date that fails
        return False


def _comment(value: object) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(value))


def relative_ref(inventory: Path, spec_path: Path) -> str:
    # The spec's folder, not the spec: a spec path that is a symlink (even a loop) is
    # replaced by the file `init` writes.
    try:
        folder = spec_path.absolute().parent.resolve()
        return str(inventory.resolve().relative_to(folder))
    except (ValueError, RuntimeError, OSError):
        return str(inventory.absolute())
