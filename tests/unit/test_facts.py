"""Facts that are simple enough to run for real on this machine: pid files, and the
stage table of `halb up`."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from halb.facts.pids import parse_pids, pids_argv
from halb.spec import load_cluster
from halb.transport.local import LocalTransport
from halb.up import STAGES, Runner

CASE = Path(__file__).resolve().parents[1] / "golden/cases/ks-guide"


def test_pid_files_are_read_and_checked_against_the_process_name(tmp_path: Path) -> None:
    comm = Path("/proc/self/comm").read_text().strip()
    mine = tmp_path / "mine.pid"
    mine.write_text(f"{os.getpid()}\n")
    stale = tmp_path / "stale.pid"  # our pid, but a pid file of another program
    stale.write_text(f"{os.getpid()}\n")
    pairs = [(str(mine), comm), (str(stale), "haproxy"), (str(tmp_path / "none.pid"), comm)]
    res = LocalTransport("here").run(pids_argv(pairs), timeout=30)
    assert res.ok
    assert parse_pids(res.out, len(pairs)) == [os.getpid(), None, None]


def test_an_answer_that_does_not_fit_is_no_answer() -> None:
    assert parse_pids("12\n", 2) is None
    assert parse_pids("12\n-\n", 2) == [12, None]


def test_up_runs_exactly_the_stages_it_names() -> None:
    runner = Runner(load_cluster(CASE / "halb.yaml"), lambda line: None, console=Console())
    assert list(runner.stages()) == list(STAGES)
