"""The Vagrant VM lab, effects: run `vagrant`, write the lab's files, take it down.

    up(lab_dir, vagrant_dir, timeout, progress)    -> Layout (hosts.ini, halb.yaml written)
    status(lab_dir, vagrant_dir)                   -> [VmState]
    down(lab_dir, vagrant_dir, timeout)            -> [what it did]

Every `vagrant` run is bounded in time; on a timeout its whole process group is stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import halb
from halb.errors import InputError
from halb.files import atomic_write, read_input
from halb.lab import vagrant, vagrant_parse
from halb.lab.model import COMMON_YAML, Progress
from halb.lab.model import STATE_FILE as NETNS_STATE_FILE
from halb.lab.standin import lay_lab_installer, remove_lab_installer
from halb.lab.vagrant import Layout
from halb.lab.vagrant_parse import VagrantError, VmState
from halb.lab.writer import COMMON_YAML as COMMON_YAML_TEXT

STATE_FILE = "vagrant.json"  # which Vagrant folder this lab dir belongs to
LAYOUT_FILE = "vagrant-layout.json"
LOG_FILE = "vagrant-up.log"
INVENTORY_FILE = "hosts.ini"
SPEC_FILE = "halb.yaml"
KNOWN_HOSTS_FILE = "known_hosts"
LAB_FILES = (
    STATE_FILE,
    LAYOUT_FILE,
    LOG_FILE,
    INVENTORY_FILE,
    SPEC_FILE,
    KNOWN_HOSTS_FILE,
    str(COMMON_YAML),
)
UP_TIMEOUT = 3600.0  # 8 VMs, a box download and provisioning
DOWN_TIMEOUT = 900.0
QUERY_TIMEOUT = 120.0  # ssh-config, status
STOP_GRACE = 10.0  # after SIGINT (Vagrant cleans up), before SIGKILL


def _quiet(_: str) -> None:
    pass


# --- where things are ------------------------------------------------------------------


def default_vagrant_dir() -> Path:
    """The Vagrantfile and its provision scripts, shipped inside the package (package data),
    so a pip or pipx install finds them as a source checkout does (vagrant/ links here)."""
    return Path(halb.__file__).resolve().parent / "vagrant"


def resolve_vagrant_dir(lab_dir: Path, given: Path | None) -> Path:
    """--vagrant-dir, else the one `lab up` recorded in the lab dir, else the default."""
    if given is None:
        recorded = _recorded_vagrant_dir(lab_dir)
        given = recorded if recorded is not None else default_vagrant_dir()
    d = given.resolve()
    if not (d / "Vagrantfile").is_file():
        raise InputError(f"{given}: no Vagrantfile there; give the lab's folder with --vagrant-dir")
    return d


def _recorded_vagrant_dir(lab_dir: Path) -> Path | None:
    state = read_state(lab_dir)
    if "vagrant_dir" in state:
        return Path(state["vagrant_dir"])
    if (lab_dir / STATE_FILE).is_file():
        raise _not_state(lab_dir)
    return None


def find_vagrant() -> str:
    exe = shutil.which("vagrant")
    if exe is None:
        raise VagrantError(
            "vagrant is not on PATH: install Vagrant and a provider (VirtualBox or "
            "libvirt), or use the namespace lab (`halb lab up`)"
        )
    return exe


# --- running vagrant -------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str


def run_vagrant(
    args: list[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: Progress = _quiet,
    log: Path | None = None,
    wrap: Sequence[str] = (),
) -> Run:
    """`vagrant ARGS` in `cwd`, stdout lines passed to `on_line` as they come; `wrap` is
    put before it (the VM lab's nsenter into its namespaces).

    The child gets its own process group, so a timeout or Ctrl-C stops all of it
    (VBoxManage, ssh, rsync), with SIGINT first (Vagrant cleans up) and SIGKILL after.
    """
    argv = [*wrap, find_vagrant(), *args]
    logf = _open_log(log) if log else None
    try:
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as e:
        if logf:
            logf.close()
        raise VagrantError(f"cannot run {argv[0]}: {e.strerror or e}") from None
    out: list[str] = []
    err: list[str] = []
    lock = threading.Lock()  # guards the log, which the two readers share

    def pump(stream: IO[str], keep: list[str], show: bool) -> None:
        for line in stream:
            keep.append(line)
            with lock:
                if logf and not logf.closed:
                    logf.write(line)
                    logf.flush()
            if show:
                on_line(line.rstrip("\n"))

    threads = [
        threading.Thread(target=pump, args=(p.stdout, out, True), daemon=True),
        threading.Thread(target=pump, args=(p.stderr, err, False), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(p)
            raise VagrantError(
                f"`vagrant {' '.join(args)}` did not finish within {timeout:g} s; stopped it"
            ) from None
    except BaseException:
        if p.poll() is None:  # Ctrl-C: the child has its own group, so stop it here
            _stop(p)
        raise
    finally:
        # A daemon the child started may hold its pipes open: read on, but not forever.
        for t in threads:
            t.join(timeout=5)
        with lock:
            if logf:
                logf.close()
    return Run(rc, "".join(out), "".join(err))


def _stop(p: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGINT, STOP_GRACE), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
        try:
            p.wait(timeout=wait)
            with contextlib.suppress(ProcessLookupError):  # what the group left behind
                os.killpg(p.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def _open_log(path: Path) -> IO[str]:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "w")


def _failed(what: str, res: Run, hint: str = "") -> VagrantError:
    said = vagrant_parse.error_text(res.out, res.err) or f"exit {res.rc}"
    return VagrantError(f"{what} failed: {said}{hint}")


# --- up / status / down ------------------------------------------------------------------


def check_lab_dir(lab_dir: Path) -> None:
    if lab_dir.exists() and not lab_dir.is_dir():
        raise InputError(f"{lab_dir}: not a directory")
    if (lab_dir / NETNS_STATE_FILE).is_file():
        raise InputError(
            f"{lab_dir} holds a namespace lab ({NETNS_STATE_FILE}); take it down "
            "(`halb lab down`) or give another --dir"
        )


def up(
    lab_dir: Path,
    vagrant_dir: Path | None,
    timeout: float = UP_TIMEOUT,
    progress: Progress = _quiet,
    env: Mapping[str, str] | None = None,
    wrap: Sequence[str] = (),
    state: Mapping[str, str] | None = None,
    reaches_vips: bool = False,
    profile: str = "default",
) -> Layout:
    """`vagrant up`, then hosts.ini and halb.yaml in `lab_dir` for `halb up`.

    `wrap`, `state`, `reaches_vips` and `profile` are the VM lab's (vm_lab): the nsenter
    prefix, what it records in the state file, that `halb up` runs where the VIPs answer
    (its namespace), and the VRRP profile its halb.yaml names (`emulated` under TCG).
    """
    base_env = dict(os.environ if env is None else env)
    settings = vagrant.check_env(base_env)
    check_lab_dir(lab_dir)
    vdir = resolve_vagrant_dir(lab_dir, vagrant_dir)
    find_vagrant()
    lab_dir.mkdir(parents=True, exist_ok=True)
    d = lab_dir.resolve()
    layout_path = d / LAYOUT_FILE
    with contextlib.suppress(FileNotFoundError):
        layout_path.unlink()  # only this run's Vagrantfile may speak
    write_state(d, vdir, state)
    run_env = {**base_env, vagrant.LAYOUT_ENV: str(layout_path)}

    args = ["up", "--no-color"]
    if "HALB_VAGRANT_PROVIDER" in settings:
        # Strict: Vagrant says why that provider cannot run instead of taking another.
        args.append(f"--provider={settings['HALB_VAGRANT_PROVIDER']}")
    shown = ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"
    progress(f"vagrant up in {vdir} ({shown}); full output in {d / LOG_FILE}")

    def on_line(line: str) -> None:
        if line.startswith(("==> ", "Bringing machine")):
            progress(line)

    res = run_vagrant(args, vdir, run_env, timeout, on_line, log=d / LOG_FILE, wrap=wrap)
    if res.rc != 0:
        raise _failed(
            "vagrant up",
            res,
            f" (full output in {d / LOG_FILE}; `halb lab down --provider "
            "vagrant` removes what was made)",
        )
    layout = _read_layout(layout_path, vdir)
    progress(f"reading `vagrant ssh-config` for {len(layout.hosts)} VMs")
    res = run_vagrant(
        ["ssh-config", "--no-color"], vdir, run_env, min(timeout, QUERY_TIMEOUT), wrap=wrap
    )
    ssh = vagrant_parse.parse_ssh_config(res.out)
    if res.rc != 0 and not all(h.name in ssh for h in layout.hosts):
        missing = ", ".join(h.name for h in layout.hosts if h.name not in ssh)
        raise _failed("vagrant ssh-config", res, f" (no SSH for {missing or 'any VM'})")
    ini = vagrant.hosts_ini(layout, ssh, d)  # raises naming any VM without an entry
    (d / COMMON_YAML).parent.mkdir(exist_ok=True)
    if not (d / COMMON_YAML).is_file():
        atomic_write(d / COMMON_YAML, COMMON_YAML_TEXT, 0o644)
    atomic_write(d / KNOWN_HOSTS_FILE, "", 0o600)  # new VMs, new keys: pinned on first use
    atomic_write(d / INVENTORY_FILE, ini, 0o600)
    atomic_write(d / SPEC_FILE, vagrant.halb_yaml(layout, profile), 0o644)
    # Vagrant's forwarded SSH ports do not reach the VMs' VIPs: there the stand-in
    # installer's stages contact nothing. From the VM lab's namespace they answer.
    lay_lab_installer(d, offline=not reaches_vips)
    progress(f"wrote {d / INVENTORY_FILE} and {d / SPEC_FILE}")
    return layout


def write_state(d: Path, vdir: Path, extra: Mapping[str, str] | None = None) -> None:
    doc = {"vagrant_dir": str(vdir), **(extra or {})}
    atomic_write(d / STATE_FILE, json.dumps(doc) + "\n", 0o644)


def read_state(lab_dir: Path) -> dict[str, str]:
    """What `lab up` recorded ({} when there is no state file)."""
    path = lab_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(read_input(path, "lab state"))
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise ValueError
        return doc
    except ValueError:
        raise _not_state(lab_dir) from None


def _not_state(lab_dir: Path) -> InputError:
    return InputError(f"{lab_dir / STATE_FILE}: not a Vagrant lab state file; remove it")


def _read_layout(path: Path, vdir: Path) -> Layout:
    if not path.is_file():
        raise VagrantError(
            f"{vdir / 'Vagrantfile'} wrote no layout to {path}: it must write the file named "
            f"by {vagrant.LAYOUT_ENV} (see vagrant/Vagrantfile)"
        )
    return vagrant.parse_layout(read_input(path, "Vagrant lab layout"), path)


def status(
    lab_dir: Path,
    vagrant_dir: Path | None,
    env: Mapping[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> list[VmState]:
    vdir = resolve_vagrant_dir(lab_dir, vagrant_dir)
    res = run_vagrant(
        ["status", "--machine-readable"], vdir, dict(os.environ if env is None else env),
        QUERY_TIMEOUT, wrap=wrap,
    )  # fmt: skip
    if res.rc != 0:
        raise _failed("vagrant status", res)
    vms = vagrant_parse.parse_status(res.out)
    layout_path = lab_dir / LAYOUT_FILE
    if not layout_path.is_file():
        return vms
    ips = {h.name: h.ip for h in _read_layout(layout_path, vdir).hosts}
    return [dataclasses.replace(v, ip=ips.get(v.name)) for v in vms]


def down(
    lab_dir: Path,
    vagrant_dir: Path | None,
    timeout: float = DOWN_TIMEOUT,
    progress: Progress = _quiet,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """`vagrant destroy -f`, then the files `up` wrote. Safe to run twice."""
    vdir = resolve_vagrant_dir(lab_dir, vagrant_dir)
    progress(f"vagrant destroy -f in {vdir}")

    def on_line(line: str) -> None:
        if line.startswith("==> "):
            progress(line)

    base_env = dict(os.environ if env is None else env)
    res = run_vagrant(["destroy", "-f", "--no-color"], vdir, base_env, timeout, on_line)
    if res.rc != 0:
        raise _failed("vagrant destroy", res)
    done = ["VMs destroyed"]
    removed = remove_files(lab_dir)
    if removed:
        done.append(f"removed {removed} files from {lab_dir}")
    return done


def remove_files(lab_dir: Path) -> int:
    if not (lab_dir / STATE_FILE).is_file():
        return 0  # not ours (or already removed): leave the folder alone
    count = 0
    for f in LAB_FILES:
        path = lab_dir / f
        if path.is_file() or path.is_symlink():
            path.unlink()
            count += 1
    remove_lab_installer(lab_dir)
    for leftover in (lab_dir / COMMON_YAML).parent, lab_dir:
        with contextlib.suppress(OSError):
            leftover.rmdir()  # only when empty
    return count
