"""The supervisor's start script, run for real by this machine's sh with a stand-in daemon
(`sleep`): stale pid files go first, and a watched daemon's exit reaches its exit file at
once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from halb.services import _START, SUPERVISED, start_argv
from halb.transport import sh

# a daemon that writes its pid file, then becomes `sleep` (same pid, comm "sleep")
DAEMON = ["sh", "-c", 'echo $$ >"$0"; exec sleep 30']


@pytest.fixture
def pids() -> Iterator[list[int]]:
    started: list[int] = []
    yield started
    for pid in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start(
    tmp: Path, exitfile: str, pidfiles: list[Path], *cmd: str
) -> subprocess.CompletedProcess[str]:
    argv = sh(_START, str(tmp / "log"), "d", "sleep", exitfile, " ".join(map(str, pidfiles)), *cmd)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def wait_for(path: Path, value: str, limit: float = 5.0) -> float:
    began = time.monotonic()
    while path.read_text().strip() != value:
        assert time.monotonic() - began < limit, f"{path} still says {path.read_text()!r}"
        time.sleep(0.01)
    return time.monotonic() - began


def test_a_watched_daemon_exit_is_written_at_once(tmp_path: Path, pids: list[int]) -> None:
    pidfile, exitfile = tmp_path / "d.pid", tmp_path / "d.exited"
    exitfile.write_text("1\n")  # left by an earlier exit
    res = start(tmp_path, str(exitfile), [pidfile], *DAEMON, str(pidfile))
    assert res.returncode == 0, res.stdout + res.stderr
    pid = int(pidfile.read_text())
    pids.append(pid)
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    assert exitfile.read_text().strip() == "0"
    os.kill(pid, signal.SIGKILL)
    # the watcher is the daemon's parent: no reaper in between, no polling interval
    assert wait_for(exitfile, "1") < 1.0


def test_a_watched_daemon_that_fails_shows_its_messages(tmp_path: Path) -> None:
    exitfile = tmp_path / "d.exited"
    fail = ["sh", "-c", 'echo "[ALERT] (1) : Starting frontend f: cannot bind socket"; exit 1']
    res = start(tmp_path, str(exitfile), [tmp_path / "d.pid"], *fail)
    assert res.returncode == 1
    assert "cannot bind socket" in res.stdout
    assert exitfile.read_text().strip() == "1"


def test_pid_files_of_dead_or_unreaped_processes_go_first(tmp_path: Path, pids: list[int]) -> None:
    dead = subprocess.Popen(["sleep", "30"])
    dead.kill()
    dead.wait()
    zombie = subprocess.Popen(["sleep", "30"])  # killed and not reaped: a zombie of ours
    zombie.kill()
    while "Z" not in Path(f"/proc/{zombie.pid}/stat").read_text().split()[2]:
        time.sleep(0.01)
    live = subprocess.Popen(["sleep", "30"])
    pids.append(live.pid)
    files = {
        "dead": dead.pid,
        "zombie": zombie.pid,
        "other": os.getpid(),  # alive, but not the daemon: a recycled pid
        "live": live.pid,
    }
    for name, pid in files.items():
        (tmp_path / f"{name}.pid").write_text(f"{pid}\n")
    (tmp_path / "empty.pid").write_text("")
    paths = [tmp_path / f"{n}.pid" for n in [*files, "empty"]]
    try:
        res = start(tmp_path, "", paths, "true")
    finally:
        zombie.wait()
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in tmp_path.glob("*.pid")) == ["live.pid"]


def test_haproxy_is_watched_and_keepalived_pid_files_are_all_cleared() -> None:
    assert SUPERVISED["haproxy"].exit_file
    assert "-db" in SUPERVISED["haproxy"].start  # foreground: the watcher is its parent
    k = SUPERVISED["keepalived"]
    assert k.pidfiles[0] == k.pidfile and len(k.pidfiles) == 3
    assert set(k.pidfiles) <= set(k.start)
    argv = start_argv("keepalived")
    assert argv[:2] == ["sh", "-c"] and argv[-len(k.start) :] == list(k.start)


def test_systemd_and_keepalived_use_the_same_exit_file() -> None:
    from halb.paths import HAPROXY_EXIT_FILE
    from halb.render import render_host
    from halb.spec import load_cluster

    dropin = (Path(__file__).parents[2] / "halb/systemd/haproxy.service.d-90-halb.conf").read_text()
    assert f"ExecStopPost=/bin/sh -c 'echo 1 > {HAPROXY_EXIT_FILE}'" in dropin
    assert f"ExecStartPost=/bin/sh -c 'echo 0 > {HAPROXY_EXIT_FILE}'" in dropin
    case = Path(__file__).resolve().parents[1] / "golden/cases/ks-guide"
    cluster = load_cluster(case / "halb.yaml")
    conf = render_host(cluster, "lb1")["/etc/keepalived/keepalived.conf"].content
    assert f'file "{HAPROXY_EXIT_FILE}"' in conf
    assert "track_file {\n        haproxy_exited\n" in conf
