"""Facts that are simple enough to run for real on this machine: pid files, and the
stage table of `halb up`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from halb.deploy.plan import sha256
from halb.deploy.run import gather_facts
from halb.facts.pids import parse_pids, pids_argv
from halb.facts.target import RemoteFile
from halb.paths import SYSCTL_CONF
from halb.render import RenderedFile
from halb.services import Supervisor, Systemd
from halb.spec import load_cluster
from halb.transport.base import Privilege
from halb.transport.local import LocalTransport
from halb.up import STAGES, Runner
from tests.needs import need

CASE = Path(__file__).resolve().parents[1] / "golden/cases/ks-guide"


def test_pid_files_are_read_and_checked_against_the_process_name(tmp_path: Path) -> None:
    comm = Path("/proc/self/comm").read_text().strip()
    mine = tmp_path / "mine.pid"
    mine.write_text(f"{os.getpid()}\n")
    stale = tmp_path / "stale.pid"  # our pid, but a pid file of another program
    stale.write_text(f"{os.getpid()}\n")
    pairs = [(str(mine), comm), (str(stale), "haproxy"), (str(tmp_path / "none.pid"), comm)]
    res = LocalTransport("here", Privilege("none")).run(pids_argv(pairs), timeout=30)
    assert res.ok
    assert parse_pids(res.out, len(pairs)) == [os.getpid(), None, None]


def test_an_answer_that_does_not_fit_is_no_answer() -> None:
    assert parse_pids("12\n", 2) is None
    assert parse_pids("12\n-\n", 2) == [12, None]


def test_up_runs_exactly_the_stages_it_names() -> None:
    runner = Runner(load_cluster(CASE / "halb.yaml"), lambda line: None, console=Console())
    assert list(runner.stages()) == list(STAGES)


def test_systemd_pids_in_one_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # systemctl faked: haproxy active with MainPID 42, keepalived inactive
    fake = tmp_path / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> "${0%/*}/calls"\n'
        "printf 'Id=haproxy.service\\nActiveState=active\\nMainPID=42\\n\\n'\n"
        "printf 'Id=keepalived.service\\nActiveState=inactive\\nMainPID=0\\n'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    svc = Systemd(LocalTransport("here", Privilege("none")))
    assert svc.main_pids() == {"haproxy": 42, "keepalived": None}
    assert (tmp_path / "calls").read_text().count("\n") == 1  # one command for both


def test_deploy_facts_pids_and_addresses_come_in_one_round_trip(tmp_path: Path) -> None:
    need("ip")
    calls: list[list[str]] = []

    class Counting(LocalTransport):
        def run(self, argv, **kw):  # type: ignore[no-untyped-def,override]
            calls.append(list(argv))
            return super().run(argv, **kw)

    t = Counting("here", Privilege("none"))
    there = tmp_path / "present.cfg"
    there.write_text("x\n")
    there.chmod(0o640)
    sysctl = tmp_path / "90-halb.conf"
    sysctl.write_text("net.ipv4.ip_forward = 1\nnet.ipv4.no_such_key = 1\n")
    files = {
        str(there): RenderedFile("x\n", 0o644),
        str(tmp_path / "absent.cfg"): RenderedFile("y\n", 0o644),
        SYSCTL_CONF: RenderedFile(sysctl.read_text(), 0o644),
    }
    facts = gather_facts(t, Supervisor(t), files)
    assert len(calls) == 1
    assert facts.files[str(tmp_path / "absent.cfg")] is None
    assert facts.files[str(there)] == RemoteFile(sha256(b"x\n"), 0o640)
    live = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    assert facts.sysctl == {"net.ipv4.ip_forward": live, "net.ipv4.no_such_key": ""}
    assert set(facts.pids) == {"haproxy", "keepalived"}
    assert facts.addrs is not None and any(a.ifname == "lo" for a in facts.addrs)
