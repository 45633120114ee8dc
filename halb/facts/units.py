"""State of systemd units, in one `systemctl show` round trip."""

from __future__ import annotations

from collections.abc import Sequence

PROPERTIES = ("Id", "ActiveState", "MainPID")


def show_argv(units: Sequence[str]) -> list[str]:
    return ["systemctl", "show", *(f"--property={p}" for p in PROPERTIES), "--", *units]


def parse_show(text: str, units: Sequence[str]) -> dict[str, int | None] | None:
    """{unit: main pid when active, else None}; None when the answer does not fit.

    `systemctl show` prints one block of KEY=VALUE lines per unit, in the order asked,
    separated by blank lines; a unit that is not installed is inactive with MainPID=0.
    """
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    if len(blocks) != len(units):
        return None
    out: dict[str, int | None] = {}
    for unit, block in zip(units, blocks, strict=True):
        props = dict(line.partition("=")[::2] for line in block.splitlines())
        if props.get("Id", "").removesuffix(".service") != unit:
            return None
        pid = props.get("MainPID", "")
        active = props.get("ActiveState") in ("active", "reloading")
        out[unit] = int(pid) if active and pid.isdigit() and pid != "0" else None
    return out
