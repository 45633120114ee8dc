"""Lab fixtures: `lab` (one small lab per test module) and `lab_factory` (custom sizes).

Both skip cleanly when not root or when `ip netns` does not work, and always take down
what they built, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
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


LOAD_CLIENT = (Path(__file__).parent / "load_client.py").read_text()


@contextlib.contextmanager
def _client_load(lab: Lab) -> Iterator[dict[str, Any]]:
    client, stop = lab.dir / "load.py", lab.dir / "load.stop"
    client.write_text(LOAD_CLIENT)
    stop.unlink(missing_ok=True)
    load = subprocess.Popen(
        [*lab.enter_argv("taskbox"), "python3", str(client), lab.vip_internal,
         lab.vip_external, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    result: dict[str, Any] = {}
    try:
        time.sleep(1.0)
        yield result
        time.sleep(1.0)
    finally:
        stop.touch()
        out, _ = load.communicate(timeout=30)
    result.update(json.loads(out))


@pytest.fixture(scope="session")
def client_load() -> Callable[[Lab], AbstractContextManager[dict[str, Any]]]:
    """`with client_load(lab) as result:` runs the load client in the taskbox through both
    VIPs around the block; `result` then holds its JSON (`ok`, `failed`)."""
    return _client_load
