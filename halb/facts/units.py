"""State of systemd units, in one `systemctl show` round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# NRestarts (systemd 235+) and the timestamp are left out by an older systemctl; their
# defaults then say "never restarted".
PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "MainPID",
    "NRestarts",
    "ActiveEnterTimestampMonotonic",
)
RUNNING = ("active", "reloading")


@dataclass(frozen=True)
class UnitState:
    unit: str  # as asked, without ".service"
    active: str  # ActiveState: active, reloading, inactive, failed, activating, ...
    sub: str  # SubState: running, dead, auto-restart, ...
    main_pid: int | None  # when running
    restarts: int = 0  # NRestarts: automatic restarts (Restart=); a restart by hand keeps it
    since_us: int | None = None  # entered "active", CLOCK_MONOTONIC in µs; None: never
    load: str = "loaded"  # LoadState: "not-found" when the package is not installed

    @property
    def running(self) -> bool:
        return self.active in RUNNING

    @property
    def label(self) -> str:
        """What a person reads: `failed`, `activating (auto-restart)`."""
        return self.active if self.sub in ("", self.active) else f"{self.active} ({self.sub})"


def show_argv(units: Sequence[str]) -> list[str]:
    return ["systemctl", "show", *(f"--property={p}" for p in PROPERTIES), "--", *units]


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def parse_states(text: str, units: Sequence[str]) -> dict[str, UnitState] | None:
    """{unit: its state}; None when the answer does not fit.

    `systemctl show` prints one block of KEY=VALUE lines per unit, in the order asked,
    separated by blank lines; a unit that is not installed is inactive with MainPID=0.
    """
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    if len(blocks) != len(units):
        return None
    out: dict[str, UnitState] = {}
    for unit, block in zip(units, blocks, strict=True):
        props = dict(line.partition("=")[::2] for line in block.splitlines())
        if props.get("Id", "").removesuffix(".service") != unit:
            return None
        active = props.get("ActiveState", "")
        pid = _int(props.get("MainPID"))
        since = _int(props.get("ActiveEnterTimestampMonotonic"))
        out[unit] = UnitState(
            unit=unit,
            active=active,
            sub=props.get("SubState", ""),
            main_pid=pid if active in RUNNING and pid else None,
            restarts=_int(props.get("NRestarts")) or 0,
            since_us=since or None,
            load=props.get("LoadState", "loaded"),
        )
    return out


def parse_show(text: str, units: Sequence[str]) -> dict[str, int | None] | None:
    """{unit: main pid when active, else None}; None when the answer does not fit."""
    states = parse_states(text, units)
    return None if states is None else {u: s.main_pid for u, s in states.items()}
