"""`halb init`: a commented starter halb.yaml from an inventory (pure)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

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
        if value is None:
            continue
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise InputError(f"{flag}: '{value}' is not an IPv4 address") from None
    plan = plan_starter(inventory, spec_dir or Path.cwd(), cluster)
    env = template_env()
    text = env.get_template("halb.yaml.j2").render(
        plan=plan,
        inventory=inventory_ref,
        vip=vip,
        external_vip=external_vip,
        interface=interface,
        router_id=derive_router_id(plan.cluster, vip),
    )
    notes = plan.notes
    return text, notes


def relative_ref(inventory: Path, spec_path: Path) -> str:
    try:
        return str(inventory.resolve().relative_to(spec_path.resolve().parent))
    except ValueError:
        return str(inventory.resolve())
