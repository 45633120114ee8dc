"""Launch the installer: stream its output live, keep all of it in a log, pass its exit code.

halb adds nothing secret to the command line or the log; what the installer prints itself
is its own business. The log is created mode 600 because installers do print such things.
"""

from __future__ import annotations

import errno
import os
import select
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.text import Text

from halb.errors import InputError

# KubeSphere 2.1 `scripts/install.sh` shows a menu (1 all-in-one, 2 multi-node, 3 quit)
# and reads the choice from stdin; an HA install is multi-node.
KUBESPHERE_ANSWER = "2\n"
# `kk create cluster` asks "Continue this installation? [yes/no]" before it starts.
KUBEKEY_ANSWER = "yes\n"


@dataclass(frozen=True)
class LaunchPlan:
    argv: tuple[str, ...]
    cwd: Path
    stdin_text: str | None = None  # answers for the installer's prompts

    def describe(self) -> str:
        return f"(cd {shlex.quote(str(self.cwd))} && {shlex.join(self.argv)})"


def plan_launch(
    kind: str,
    base_dir: Path,
    config: Path | None,
    command: str | None,
    answer: str | None = None,
) -> LaunchPlan:
    """Which command to run where. A `command` from halb.yaml wins over the kind's default.

    `config` is the installer config (relative to base_dir, the halb.yaml folder).
    `answer` replaces the default stdin answers (None keeps them, "" sends none).
    """
    cfg = (base_dir / config) if config is not None else None

    def stdin(default: str | None) -> str | None:
        if answer is None:
            return default
        return answer if answer.endswith("\n") or not answer else answer + "\n"

    if command:
        # A command for a known kind still runs that installer: it gets the kind's answers.
        default = {"kubesphere": KUBESPHERE_ANSWER, "kubekey": KUBEKEY_ANSWER}.get(kind)
        return LaunchPlan(("bash", "-c", command), base_dir, stdin(default))
    if kind == "kubesphere":
        # conf/common.yaml -> the installer folder holds conf/ and scripts/.
        root = cfg.parent.parent if cfg is not None else base_dir
        script = root / "scripts" / "install.sh"
        if not script.is_file():
            raise InputError(f"{script}: no such file (KubeSphere installer script)")
        return LaunchPlan(("bash", "./scripts/install.sh"), root, stdin(KUBESPHERE_ANSWER))
    if kind == "kubekey":
        if cfg is None:
            raise InputError("installer.config: KubeKey needs its cluster config file")
        where = cfg.parent
        local = where / "kk"
        kk = "./kk" if local.is_file() and os.access(local, os.X_OK) else "kk"
        return LaunchPlan((kk, "create", "cluster", "-f", cfg.name), where, stdin(KUBEKEY_ANSWER))
    if kind == "kubespray":
        if cfg is None:
            raise InputError("installer.config: Kubespray needs group_vars/all/all.yml")
        root, inventory = _kubespray_layout(cfg)
        argv = ("ansible-playbook", "-i", os.path.relpath(inventory, root), "cluster.yml", "-b")
        return LaunchPlan(argv, root, stdin(None))
    if kind == "command":
        raise InputError("installer.command: installer kind 'command' needs a command")
    raise InputError(f"installer.kind: unknown installer {kind!r}")


def _kubespray_layout(cfg: Path) -> tuple[Path, Path]:
    """(kubespray checkout holding cluster.yml, inventory file next to group_vars/)."""
    inv_dir = next((p.parent for p in cfg.parents if p.name == "group_vars"), None)
    if inv_dir is None:
        raise InputError(f"{cfg}: not under a group_vars/ folder of a Kubespray inventory")
    names = ("hosts.yaml", "hosts.yml", "hosts.ini", "inventory.ini")
    inventory = next((inv_dir / n for n in names if (inv_dir / n).is_file()), None)
    if inventory is None:
        raise InputError(f"{inv_dir}: no inventory file ({', '.join(names)})")
    root = next((p for p in inv_dir.parents if (p / "cluster.yml").is_file()), None)
    if root is None:
        raise InputError(f"{inv_dir}: no Kubespray cluster.yml in any parent folder")
    return root, inventory


def default_log_path(base_dir: Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return base_dir / f"halb-install-{stamp}.log"


def _open_log(path: Path) -> int:
    """The log, opened for writing: a regular file, never through a planted symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        why = "a symbolic link" if e.errno == errno.ELOOP else (e.strerror or str(e))
        raise InputError(f"{path}: cannot write the install log: {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{path}: cannot write the install log: not a regular file")
    os.set_blocking(fd, True)
    os.ftruncate(fd, 0)  # only now: a device or FIFO was never truncated or written
    os.fchmod(fd, 0o600)  # an existing file keeps no wider mode
    return fd


def run_installer(
    plan: LaunchPlan,
    log_path: Path,
    console: Console,
    *,
    console_url: str = "",
    clock: Callable[[], float] = time.monotonic,
    tick: float = 1.0,
) -> int:
    """Run the plan, echo each line, log every byte; return the exit code (128+N on signal)."""
    log = _open_log(log_path)
    start = clock()
    try:
        _log_line(log, f"# halb install {datetime.now().isoformat(timespec='seconds')}")
        for line in plan.describe().splitlines():
            _log_line(log, f"# {line}")
        try:
            proc = subprocess.Popen(
                list(plan.argv),
                cwd=plan.cwd,
                stdin=subprocess.PIPE if plan.stdin_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                bufsize=0,
            )
        except OSError as e:
            _log_line(log, f"# cannot start: {e.strerror}")
            raise InputError(
                f"cannot start the installer {plan.argv[0]!r} in {plan.cwd}: {e.strerror}"
            ) from None
        _feed(proc, plan.stdin_text)
        code = _pump(proc, log, console, start, clock, tick)
        elapsed = clock() - start
        _log_line(log, f"# exit code {code} after {elapsed:.0f} s")
    finally:
        os.close(log)
    _report(console, code, elapsed, log_path, console_url)
    return code


def _feed(proc: subprocess.Popen[bytes], text: str | None) -> None:
    if proc.stdin is None:
        return
    try:
        if text:
            proc.stdin.write(text.encode())
        proc.stdin.close()
    except BrokenPipeError:  # the installer did not wait for its answers
        pass


def _pump(
    proc: subprocess.Popen[bytes],
    log: int,
    console: Console,
    start: float,
    clock: Callable[[], float],
    tick: float,
) -> int:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    partial = b""
    last = ""
    try:
        with console.status(_status(0, ""), spinner="dots") as status:
            while True:
                ready, _, _ = select.select([fd], [], [], tick)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    os.write(log, chunk)
                    partial += chunk
                    *lines, partial = partial.split(b"\n")
                    for raw in lines:
                        _echo(console, raw)
                    if lines:
                        last = _clean(lines[-1])
                shown = _clean(partial) or last  # a prompt without newline shows too
                status.update(_status(clock() - start, shown))
        if partial:
            _echo(console, partial)
            os.write(log, b"\n")
        code = proc.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the installer too; give it a moment to stop.
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        raise
    finally:
        proc.stdout.close()
    return code if code >= 0 else 128 - code


def _echo(console: Console, raw: bytes) -> None:
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    console.print(Text.from_ansi(line), highlight=False, soft_wrap=True)


def _clean(raw: bytes) -> str:
    text = Text.from_ansi(raw.decode("utf-8", errors="replace")).plain
    return "".join(c for c in text if c.isprintable()).strip()[:120]


def _status(elapsed: float, last: str) -> Text:
    m, s = divmod(int(elapsed), 60)
    t = Text(f"installer running {m:02d}:{s:02d}", style="bold")
    if last:
        t.append("  " + last, style="dim")
    return t


def _log_line(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


def _report(console: Console, code: int, elapsed: float, log: Path, url: str) -> None:
    m, s = divmod(int(elapsed), 60)
    if code == 0:
        console.print(
            Text.assemble(("installer finished", "green"), f" in {m}m{s:02d}s; log: {log}")
        )
        if url:
            console.print(Text.assemble("console (through the external VIP): ", (url, "bold")))
    else:
        console.print(
            Text.assemble(("installer failed", "red"), f" with exit code {code} after {m}m{s:02d}s")
        )
        console.print(Text(f"log: {log}"))
