"""Lab fixtures: `lab` (one small lab per test module) and `lab_factory` (custom sizes).

Both skip cleanly when not root or when `ip netns` does not work, and always take down
what they built, also when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from halb import lab as labmod
from halb.lab import Lab

LabFactory = Callable[..., Lab]


def _require_lab_support() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if not labmod.ip_netns_available():
        pytest.skip("`ip netns` is not available here")


@pytest.fixture(scope="module")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """`lab_factory(lbs=2, masters=2, nodes=2, **up_kwargs) -> Lab`; all torn down at the end.

    A test may also call `halb.lab.down(lab.name, lab.dir)` itself to take a lab down early.
    """
    _require_lab_support()
    made: list[tuple[str, Path]] = []

    def make(lbs: int = 2, masters: int = 2, nodes: int = 2, **kw: Any) -> Lab:
        name = kw.pop("name", None) or labmod.pick_name("t")
        d = tmp_path_factory.mktemp(f"lab-{name}") / "lab"
        made.append((name, d))
        return labmod.up(name, d, lbs=lbs, masters=masters, nodes=nodes, **kw)

    try:
        yield make
    finally:
        for name, d in reversed(made):
            labmod.down(name, d)


@pytest.fixture(scope="module")
def lab(lab_factory: LabFactory) -> Lab:
    """A lab with 2 LBs, 2 masters and 2 nodes, shared by the tests of one module."""
    return lab_factory(lbs=2, masters=2, nodes=2)


class PsWatch:
    """Snapshots of every process's argv on the machine (all namespaces share pids)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.snapshots: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            r = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
            self.snapshots.append(r.stdout)
            self._stop.wait(self.interval)

    def __enter__(self) -> PsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def ps_watch() -> type[PsWatch]:
    """`with ps_watch() as ps:` snapshots `ps -eo args` every 50 ms (for secret leaks)."""
    return PsWatch
