"""The deploy executor without a lab: every shell step runs for real on files under a
temp dir (target paths are moved there), HAProxy's own `-c` validates; only failures we
cannot cause on this machine without a lab (a service that will not reload, one that dies
after starting, a link that drops) are faked, and every call is recorded in order."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from halb import redirect
from halb.deploy.apply import HostDeployer
from halb.deploy.plan import HostPlan, ServiceAction, plan_host, sha256
from halb.deploy.report import HostState
from halb.deploy.steps import TMP_PREFIX, UPLOAD_SCRIPT
from halb.deploy.vips import wait_for_vips
from halb.errors import DeployError
from halb.facts.target import RemoteFile, TargetFacts
from halb.paths import (
    HAPROXY_CFG,
    HAPROXY_PIDFILE,
    NOTIFY_SCRIPT,
    REDIRECT_NFT,
    REDIRECT_SCRIPT,
    SCRIPT_DIR,
)
from halb.render import RenderedFile
from halb.services import SERVICES, ServiceManager, ServiceName, Supervisor, Systemd
from halb.transport.base import Privilege, Result, Transport

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")

# Paths on a target that the sandbox moves under its root.
TARGET_PREFIXES = ("/etc/", "/var/lib/halb", "/run/", "/var/log/halb")
_TARGET_PATH = re.compile(r"(^|[\s'\"=])(" + "|".join(re.escape(p) for p in TARGET_PREFIXES) + ")")

HAPROXY_OK = """global
    log stdout format raw local0
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend fe
    bind 127.0.0.1:1
    default_backend be
backend be
    server s1 127.0.0.1:2
"""
HAPROXY_OLD = HAPROXY_OK.replace("127.0.0.1:2", "127.0.0.1:3")
HAPROXY_BROKEN = HAPROXY_OK + "    bogus_kw on\n"
NOTIFY = '#!/bin/sh\necho "$@"\n'

Event = tuple[str, ...]
Fail = Callable[[list[str]], Result | None]


class Sandbox(Transport):
    """Runs each command on this machine with every target path moved under `root`.

    `fail(argv)` may return a faked Result or raise (a failure with no real cause here);
    None lets the command run for real. Every argv lands in `log` in order.
    """

    def __init__(self, root: Path, log: list[Event], fail: Fail | None = None) -> None:
        super().__init__("lb1", Privilege("none"))
        self.root = root
        self.log = log
        self.fail = fail or (lambda argv: None)

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        # also inside scripts: a chain carries its steps' paths in its own text
        return [_TARGET_PATH.sub(rf"\g<1>{self.root}\g<2>", a) for a in argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        self.log.append(("run", *argv))
        faked = self.fail(list(argv))
        if faked is None:
            return super().run(argv, input=input, timeout=timeout, check=check)
        if check and not faked.ok:
            raise self.error(f"exited {faked.rc}")
        return faked


class RecordingServices(ServiceManager):
    """Records what the executor asks of the services; `fail` names calls that fail (the
    first time), and `dies` names services that stop right after they start."""

    kind = "recording"

    def __init__(
        self,
        t: Transport,
        log: list[Event],
        running: Sequence[ServiceName] = ("haproxy", "keepalived"),
        fail: Sequence[Event] = (),
        dies: Sequence[ServiceName] = (),
    ) -> None:
        super().__init__(t)
        self.log = log
        self.pids: dict[ServiceName, int | None] = {n: 100 + i for i, n in enumerate(running)}
        self.fail = set(fail)
        self.dies = set(dies)

    def _call(self, *event: str) -> None:
        self.log.append(event)
        if event in self.fail:  # once: the rollback's own reload then works
            self.fail.discard(event)
            raise DeployError(f"{self.t.name}: {' '.join(event)} failed")

    # a real harmless command printing the pids, as the deploy's verify step reads them
    def pids_argv(self, names: Sequence[ServiceName]) -> list[str]:
        words = [str(p) if (p := self.pids.get(n)) is not None else "-" for n in names]
        return ["printf", "%s\\n", *words]

    def start(self, name: ServiceName) -> None:
        self._call("start", name)
        self.pids[name] = None if name in self.dies else 200

    def stop(self, name: ServiceName) -> None:
        self._call("stop", name)
        self.pids[name] = None

    def reload(self, name: ServiceName, *, wait: float = 10.0) -> None:
        self._call("reload", name)

    def stop_now_argv(self, name: ServiceName) -> list[str]:
        return ["true"]  # the drill's, not the deploy's

    # the deploy's own reload is a step of its chain: a harmless real command, recorded
    # (and failed, if asked) when the deploy reads its answer
    def reload_argv(self, name: ServiceName, wait: float = 10.0) -> list[str]:
        return ["true"]

    def reload_error(
        self, name: ServiceName, rc: int, out: str, wait: float = 10.0
    ) -> DeployError | None:
        try:
            self._call("reload", name)
        except DeployError as e:
            return e
        return None

    def enable(self, name: ServiceName) -> None:
        self._call("enable", name)


def _live(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _place(root: Path, path: str, content: str, mode: int = 0o644) -> RemoteFile:
    f = _live(root, path)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(content)
    f.chmod(mode)
    return RemoteFile(sha256(content.encode()), mode)


def _plan(
    root: Path, files: dict[str, str], *, old: dict[str, str], running: Sequence[str]
) -> HostPlan:
    """The pure plan for `files` against what `old` puts under root now."""
    have: dict[str, RemoteFile | None] = {p: None for p in files}
    for path, content in old.items():
        have[path] = _place(root, path, content, 0o755 if path.endswith(".sh") else 0o644)
    rendered = {p: RenderedFile(c, 0o755 if p.endswith(".sh") else 0o644) for p, c in files.items()}
    facts = TargetFacts(have, {n: n in running for n in ("haproxy", "keepalived")})
    return plan_host("lb1", "recording", rendered, facts, install=False)


def _deploy(
    root: Path,
    hp: HostPlan,
    *,
    fail: Fail | None = None,
    services: dict[str, Sequence[str]] | None = None,
    running: Sequence[ServiceName] = ("haproxy", "keepalived"),
) -> tuple[HostDeployer, list[Event]]:
    log: list[Event] = []
    t = Sandbox(root, log, fail)
    svc = RecordingServices(t, log, running=running, **(services or {}))  # type: ignore[arg-type]
    # the pids as the deploy's facts read them, under its lock
    pids = dict(svc.pids)
    d = HostDeployer(hp, t, svc, lambda host, msg: None, "20260101T000000.000000Z", pids)
    return d, log


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TMP_PREFIX}*")]


def _services(log: Sequence[Event]) -> list[Event]:
    return [e for e in log if e[0] != "run"]


def _is_rollback(e: Event) -> bool:
    return e[0] == "run" and any(".halb-rb" in a for a in e)


# --------------------------------------------------------------------------- apply


@needs_haproxy
def test_a_change_is_validated_backed_up_replaced_and_reloaded(tmp_path: Path) -> None:
    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_OK, NOTIFY_SCRIPT: NOTIFY},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=("haproxy", "keepalived"),
    )
    d, log = _deploy(tmp_path, hp)
    res = d.run()
    assert res.status is HostState.CHANGED, res.error
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OK
    assert _live(tmp_path, NOTIFY_SCRIPT).read_text() == NOTIFY
    assert os.stat(_live(tmp_path, NOTIFY_SCRIPT)).st_mode & 0o777 == 0o755
    backup = tmp_path / d.backup.lstrip("/")
    assert (Path(f"{backup}{tmp_path}") / HAPROXY_CFG.lstrip("/")).read_text() == HAPROXY_OLD
    assert res.backup == d.backup
    assert _temps(tmp_path) == []
    # two round trips: the upload, then one chain of every later step, in which haproxy -c
    # ran on the temp file before anything was renamed over a live file
    runs = [e for e in log if e[0] == "run"]
    assert len(runs) == 2 and runs[0][1:4] == ("sh", "-c", UPLOAD_SCRIPT)
    steps = runs[1][3]
    check = steps.index(f"haproxy -c -f {HAPROXY_CFG.rsplit('/', 1)[0]}/{TMP_PREFIX}")
    assert check < steps.index("mv -f") and check < steps.index("cp -a")
    assert _services(log) == [("reload", "haproxy")]
    # the same chain ends with the check that both services run: HAProxy's pid from it
    assert steps.index(shlex.join(d.svc.pids_argv(SERVICES))) > steps.index("mv -f")
    assert res.haproxy_pid == 100


@needs_haproxy
def test_a_service_gone_after_the_reload_fails_the_verify_step_and_rolls_back(
    tmp_path: Path,
) -> None:
    """Both ran when the facts were read; keepalived is gone when the chain's last check
    looks (the step every deploy that reloads ends with)."""
    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_OK},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=("haproxy", "keepalived"),
    )
    assert [s.action for s in hp.services] == [ServiceAction.RELOAD, ServiceAction.NONE]
    d, log = _deploy(tmp_path, hp, running=("haproxy",))
    res = d.run()
    assert res.status is HostState.ROLLED_BACK, res
    assert res.error == "lb1: keepalived is not running after the deploy"
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OLD
    # one chain did it all (no round trip of its own for the check), then the rollback
    # put the old file back and reloaded it
    runs = [e for e in log if e[0] == "run"]
    assert shlex.join(["printf", "%s\\n", "100", "-"]) in runs[1][3]
    restore = next(i for i, e in enumerate(log) if _is_rollback(e))
    assert _services(log[restore:]) == [("reload", "haproxy")]


@needs_haproxy
def test_a_config_haproxy_rejects_replaces_nothing(tmp_path: Path) -> None:
    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_BROKEN, NOTIFY_SCRIPT: NOTIFY},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=("haproxy", "keepalived"),
    )
    d, log = _deploy(tmp_path, hp)
    res = d.run()
    assert res.status is HostState.FAILED
    assert res.error is not None and "failed `haproxy -c`" in res.error
    assert "bogus_kw" in res.error and "nothing was replaced" in res.error
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OLD
    assert not _live(tmp_path, NOTIFY_SCRIPT).exists()
    assert _temps(tmp_path) == []
    assert _services(log) == []


def test_an_unchanged_host_gets_no_command_and_no_reload(tmp_path: Path) -> None:
    hp = _plan(
        tmp_path,
        {NOTIFY_SCRIPT: NOTIFY},
        old={NOTIFY_SCRIPT: NOTIFY},
        running=("haproxy", "keepalived"),
    )
    assert not hp.changed
    d, log = _deploy(tmp_path, hp)
    res = d.run()
    assert res.status is HostState.UNCHANGED
    assert log == []


# ------------------------------------------------------------------------ rollback


@needs_haproxy
def test_a_failed_reload_restores_the_files_then_reloads_the_old_config(
    tmp_path: Path,
) -> None:
    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_OK, NOTIFY_SCRIPT: NOTIFY},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=("haproxy", "keepalived"),
    )
    d, log = _deploy(tmp_path, hp, services={"fail": [("reload", "haproxy")]})
    res = d.run()
    assert res.status is HostState.ROLLED_BACK, res
    assert "reload haproxy failed" in (res.error or "")
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OLD
    assert not _live(tmp_path, NOTIFY_SCRIPT).exists()  # created by this deploy: removed
    assert _temps(tmp_path) == []
    # the failed reload, then the files, then a reload of the restored config
    first_reload = log.index(("reload", "haproxy"))
    restore = next(i for i, e in enumerate(log) if _is_rollback(e))
    assert first_reload < restore
    assert _services(log[restore:]) == [("reload", "haproxy")]


@needs_haproxy
def test_rollback_stops_what_it_started_in_reverse_after_restoring_files(
    tmp_path: Path,
) -> None:
    """Neither service ran before; keepalived dies right after its start."""
    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_OK},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=(),
    )
    assert [s.action for s in hp.services] == [ServiceAction.START, ServiceAction.START]
    d, log = _deploy(tmp_path, hp, running=(), services={"dies": ["keepalived"]})
    res = d.run()
    assert res.status is HostState.ROLLED_BACK
    assert "keepalived is not running after the deploy" in (res.error or "")
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OLD
    restore = next(i for i, e in enumerate(log) if _is_rollback(e))
    assert _services(log[:restore]) == [
        ("start", "haproxy"),
        ("enable", "haproxy"),
        ("start", "keepalived"),
        ("enable", "keepalived"),
    ]
    # started services stop last-started first; nothing was reloaded, so no reload
    assert _services(log[restore:]) == [("stop", "keepalived"), ("stop", "haproxy")]


@needs_haproxy
def test_a_link_that_drops_after_the_rename_still_rolls_back(tmp_path: Path) -> None:
    """The rename ran on the target; its answer never came back."""

    def drop_after_move(argv: list[str]) -> Result | None:
        if argv[:2] == ["sh", "-c"] and "mv -f" in argv[2] and ".halb-rb" not in argv[2]:
            Transport.run(t, argv, timeout=30, check=True)  # the rename happens for real
            raise t.error("connection closed by remote host")
        return None

    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_OK},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=("haproxy", "keepalived"),
    )
    d, log = _deploy(tmp_path, hp, fail=drop_after_move)
    t = d.t
    res = d.run()
    assert res.status is HostState.ROLLED_BACK, res
    assert "connection closed" in (res.error or "")
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OLD
    # the reload shared the lost answer's command, so it may have run: the restored config
    # is reloaded too
    assert _services(log) == [("reload", "haproxy")]


# ------------------------------------------------------------------- reload checks


def _dummy_master(tmp_path: Path, on_usr2: str) -> subprocess.Popen[bytes]:
    """A process named haproxy with one worker; `on_usr2` is what it does on a reload."""
    exe = tmp_path / "bin" / "haproxy"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f"#!/bin/sh\ntrap '{on_usr2}' USR2\nsleep 300 &\nwhile :; do wait; done\n")
    exe.chmod(0o755)
    proc = subprocess.Popen([str(exe)], start_new_session=True)
    # reaped as soon as it exits, as a supervisor would: a zombie still answers kill -0
    threading.Thread(target=proc.wait, daemon=True).start()
    pidfile = _live(tmp_path, HAPROXY_PIDFILE)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 5
    while not _children(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _reload(tmp_path: Path, config: str, on_usr2: str, wait: float = 2.0) -> set[int]:
    """Reload the dummy through the real Supervisor; returns the workers it had before."""
    _place(tmp_path, HAPROXY_CFG, config)
    proc = _dummy_master(tmp_path, on_usr2)
    try:
        before = _children(proc.pid)
        assert before, "the dummy master did not start its worker"
        Supervisor(Sandbox(tmp_path, [])).reload("haproxy", wait=wait)
        return before
    finally:
        _stop(proc)


@needs_haproxy
def test_reload_validates_signals_and_sees_the_new_worker(tmp_path: Path) -> None:
    _reload(tmp_path, HAPROXY_OK, "sleep 300 &")


@needs_haproxy
def test_reload_of_an_invalid_config_sends_no_signal(tmp_path: Path) -> None:
    marker = tmp_path / "signalled"
    with pytest.raises(DeployError, match="failed validation, not reloading haproxy"):
        _reload(tmp_path, HAPROXY_BROKEN, f"touch {marker}")
    assert not marker.exists()


@needs_haproxy
def test_reload_without_a_new_worker_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="did not start a new worker within 1s"):
        _reload(tmp_path, HAPROXY_OK, ":", wait=1.0)


@needs_haproxy
def test_a_master_that_exits_on_reload_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="haproxy exited during reload"):
        _reload(tmp_path, HAPROXY_OK, "kill 0; exit 0")


@needs_haproxy
def test_systemd_reload_is_one_command_through_systemctl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemctl faked (its unit state and `reload` sending USR2 to the dummy master);
    the validation, the pid, the reload and the wait for the new worker are one command."""
    _place(tmp_path, HAPROXY_CFG, HAPROXY_OK)
    proc = _dummy_master(tmp_path, "sleep 300 &")
    fake = tmp_path / "sbin" / "systemctl"  # not bin/: the dummy haproxy lives there
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> "${0%/*}/calls"\n'
        'case "$1" in\n'
        f"  show) printf 'ActiveState=active\\nMainPID={proc.pid}\\n' ;;\n"
        f"  reload) kill -USR2 {proc.pid} ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    log: list[Event] = []
    try:
        before = _children(proc.pid)
        Systemd(Sandbox(tmp_path, log)).reload("haproxy", wait=2.0)
        assert _children(proc.pid) - before  # the new worker
    finally:
        _stop(proc)
    assert len(log) == 1
    calls = (fake.parent / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["show", "reload"]


@needs_haproxy
def test_a_link_lost_before_the_chain_ran_rolls_back_to_the_untouched_files(
    tmp_path: Path,
) -> None:
    """The chain's answer never came: nothing was backed up or renamed, and the rollback
    (which must assume it all ran) leaves the live files as they are."""

    def drop_chain(argv: list[str]) -> Result | None:
        if argv[:2] == ["sh", "-c"] and "mv -f" in argv[2] and ".halb-rb" not in argv[2]:
            raise t.error("connection closed by remote host")
        return None

    hp = _plan(
        tmp_path,
        {HAPROXY_CFG: HAPROXY_OK, NOTIFY_SCRIPT: NOTIFY},
        old={HAPROXY_CFG: HAPROXY_OLD},
        running=("haproxy", "keepalived"),
    )
    d, _ = _deploy(tmp_path, hp, fail=drop_chain)
    t = d.t
    res = d.run()
    assert res.status is HostState.ROLLED_BACK, res
    assert res.rollback_error is None
    assert _live(tmp_path, HAPROXY_CFG).read_text() == HAPROXY_OLD
    assert not _live(tmp_path, NOTIFY_SCRIPT).exists()
    assert _temps(tmp_path) == []


# ------------------------------------------------------------------ VIP settle logic

VIPS = {"internal": "10.250.7.253"}
EXPECT = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"


def _holding(vip: str) -> str:
    return EXPECT + f"2: eth0    inet {vip}/32 scope global eth0:halb0\\       valid_lft forever\n"


class Timeline(Transport):
    """`ip -o addr` as a host answers it at each moment: seconds since start -> holds the
    VIP. The addresses are only text here; nothing is contacted."""

    def __init__(self, name: str, t0: float, holds: Callable[[float], bool]) -> None:
        super().__init__(name, Privilege("none"))
        self.holds = holds
        self.t0 = t0

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        raise AssertionError("no command leaves this test")

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        assert list(argv) == ["ip", "-o", "addr", "show"]
        held = self.holds(time.monotonic() - self.t0)
        return Result(0, (_holding(VIPS["internal"]) if held else EXPECT).encode(), b"")


def test_vips_wait_for_one_holder_that_stays_for_the_settle_time() -> None:
    # lb2 holds the VIP at first, then lb1 takes it over (preempts) at 0.6 s
    t0 = time.monotonic()
    hosts = {
        "lb1": Timeline("lb1", t0, lambda s: s >= 0.6),
        "lb2": Timeline("lb2", t0, lambda s: s < 0.6),
    }
    holders, error = wait_for_vips(hosts, VIPS, timeout=5, settle=1.0)
    elapsed = time.monotonic() - t0
    assert error is None and holders == {"internal": ["lb1"]}
    assert elapsed >= 1.5  # stable for a whole settle window after the takeover


def test_vips_on_their_final_host_need_no_settle_time() -> None:
    t0 = time.monotonic()
    hosts = {
        "lb1": Timeline("lb1", t0, lambda s: True),
        "lb2": Timeline("lb2", t0, lambda s: False),
    }
    holders, error = wait_for_vips(hosts, VIPS, timeout=5, settle=3.0, final={"internal": "lb1"})
    assert error is None and holders == {"internal": ["lb1"]}
    assert time.monotonic() - t0 < 1.0


def test_split_brain_or_no_holder_until_the_deadline_is_an_error() -> None:
    t0 = time.monotonic()
    both = {"lb1": Timeline("lb1", t0, lambda s: True), "lb2": Timeline("lb2", t0, lambda s: True)}
    holders, error = wait_for_vips(both, VIPS, timeout=0.6)
    assert holders == {"internal": ["lb1", "lb2"]}
    assert error == "VIP internal held by lb1 and lb2 (split brain) after 0.6s"
    none = {"lb1": Timeline("lb1", t0, lambda s: False)}
    _, error = wait_for_vips(none, VIPS, timeout=0.3)
    assert error == "VIP internal has no holder after 0.3s"


def test_one_holder_that_keeps_moving_is_accepted_at_the_deadline() -> None:
    t0 = time.monotonic()
    flip = {
        "lb1": Timeline("lb1", t0, lambda s: int(s / 0.3) % 2 == 0),
        "lb2": Timeline("lb2", t0, lambda s: int(s / 0.3) % 2 == 1),
    }
    holders, error = wait_for_vips(flip, VIPS, timeout=1.2, settle=5.0)
    assert error is None and len(holders["internal"]) == 1


# halb's nftables redirect (co-located LB hosts). `nft` itself never runs here: its check
# is answered by the fake, and the script the deploy runs is the test's own.
REDIRECT_SH = '#!/bin/sh\necho "$1" >> "${0%/*}/calls"\n'
REDIRECT_SH_FAILS = '#!/bin/sh\necho "$1" >> "${0%/*}/calls"\nexit 1\n'


@pytest.fixture
def fake_nft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `nft` first on PATH that only records its arguments: the machine's own nftables
    is never asked anything, not even a check."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    calls = tmp_path / "nft-calls"
    nft = bin_dir / "nft"
    nft.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    nft.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_the_redirect_is_checked_before_any_move_and_loaded_after_the_services(
    tmp_path: Path, fake_nft: Path
) -> None:
    files = {REDIRECT_NFT: "table ip halb_redirect {}\n", REDIRECT_SCRIPT: REDIRECT_SH}
    hp = _plan(tmp_path, files, old={}, running=("haproxy", "keepalived"))
    d, log = _deploy(tmp_path, hp)
    res = d.run()
    assert res.status is HostState.CHANGED, res
    checked = fake_nft.read_text().split()
    assert checked[:2] == ["-c", "-f"] and TMP_PREFIX in checked[2]
    assert (_live(tmp_path, SCRIPT_DIR) / "calls").read_text() == "load\n"
    chain = next(" ".join(e) for e in log if "load" in " ".join(e))
    assert chain.index("nft -c -f") < chain.index("mv -f") < chain.index("redirect.sh load")


def test_a_failed_load_rolls_back_and_drops_the_table_it_created(
    tmp_path: Path, fake_nft: Path
) -> None:
    files = {REDIRECT_NFT: "table ip halb_redirect {}\n", REDIRECT_SCRIPT: REDIRECT_SH_FAILS}
    hp = _plan(tmp_path, files, old={}, running=("haproxy", "keepalived"))
    d, log = _deploy(tmp_path, hp)
    res = d.run()
    assert res.status is HostState.ROLLED_BACK, res
    assert "loading halb's nftables redirect failed" in (res.error or "")
    assert ("run", *redirect.DROP_ARGV) in log
    assert fake_nft.read_text().splitlines()[-2:] == [
        "list table ip halb_redirect",
        "delete table ip halb_redirect",
    ]
    assert not _live(tmp_path, REDIRECT_NFT).exists()
    assert not _live(tmp_path, REDIRECT_SCRIPT).exists()


def test_a_rolled_back_change_loads_the_former_table(tmp_path: Path, fake_nft: Path) -> None:
    old = {REDIRECT_NFT: "table ip halb_redirect {}\n", REDIRECT_SCRIPT: REDIRECT_SH}
    new = {REDIRECT_NFT: "table ip halb_redirect { }\n", REDIRECT_SCRIPT: REDIRECT_SH_FAILS}
    hp = _plan(tmp_path, new, old=old, running=("haproxy", "keepalived"))
    d, log = _deploy(tmp_path, hp)
    res = d.run()
    assert res.status is HostState.ROLLED_BACK, res
    assert _live(tmp_path, REDIRECT_SCRIPT).read_text() == REDIRECT_SH
    # the new script's failed load, then the former script's load
    assert (_live(tmp_path, SCRIPT_DIR) / "calls").read_text() == "load\nload\n"
    assert ("run", *redirect.DROP_ARGV) not in log
