"""Run an installer to its end: on a terminal of its own, answered, watched and bounded.

The installer runs in a new session on a pty: bash shows `read -p` prompts only on a
terminal, a prompt is answered when it shows (never by a blind stdin that ends and makes
a `read` loop spin), and the whole process group can be stopped. Its output is echoed
live and logged (InstallLog); the Watcher turns it into stages, answers and a verdict.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.text import Text

from halb.errors import InputError
from halb.installers.inputwait import waiting_for_input
from halb.installers.installlog import LOG_CAP, InstallLog
from halb.installers.launch import LaunchPlan
from halb.installers.watch import Answer, StageStarted, Stop, Verdict, Watcher

PARTIAL_CAP = 64 * 1024  # a partial line longer than this is a screen, not a prompt


@dataclass(frozen=True)
class RunLimits:
    input_wait: float = 10.0  # silent this long while reading its terminal: a question
    stop_grace: float = 10.0  # after SIGINT/SIGTERM, before the next signal
    log_cap: int = LOG_CAP
    tick: float = 0.5


@dataclass(frozen=True)
class RunResult:
    verdict: Verdict
    seconds: float
    log: Path


def visible(raw: bytes) -> str:
    """What a terminal would show of one line: after its last carriage return, no escapes."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    text = text[text.rfind("\r") + 1 :]
    plain = Text.from_ansi(text).plain
    return "".join(c for c in plain if c.isprintable())


def clock_text(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


# Held back while the installer starts (see _Session.run), delivered once it can be stopped.
_STOPS = {signal.SIGINT, signal.SIGTERM}


def _take_terminal() -> None:
    # In the child, after setsid: the pty becomes its controlling terminal, so a program
    # that opens /dev/tty for a password asks here, where halb sees it. The child must not
    # inherit halb's held-back signals: Ctrl-C has to reach the installer.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def _spawn(plan: LaunchPlan) -> tuple[subprocess.Popen[bytes], int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    tty = os.ttyname(slave)
    env = dict(os.environ)
    env.setdefault("TERM", "dumb")
    try:
        proc = subprocess.Popen(
            list(plan.argv),
            cwd=plan.cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,  # the pty as controlling terminal
            env=env,
        )
    except OSError as e:
        os.close(master)
        raise InputError(
            f"cannot start the installer {plan.argv[0]!r} in {plan.cwd}: {e.strerror}"
        ) from None
    finally:
        os.close(slave)
    return proc, master, tty


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(proc: subprocess.Popen[bytes], first: int, grace: float) -> int:
    """Signal the installer's process group, escalate to SIGKILL; the main exit code."""
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        _signal_group(proc.pid, sig)
        try:
            code = proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    else:  # pragma: no cover - SIGKILL always ends it
        code = proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # children that outlived their parent
    return code if code >= 0 else 128 - code


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """halb stopped by SIGTERM stops the installer too (it runs in its own session)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class _Session:
    """One run: reads the pty, logs, echoes, answers; ends with a verdict."""

    def __init__(
        self,
        plan: LaunchPlan,
        log: InstallLog,
        console: Console,
        limits: RunLimits,
        clock: Callable[[], float],
    ) -> None:
        self.plan = plan
        self.log = log
        self.console = console
        self.limits = limits
        self.clock = clock
        self.watcher = Watcher(plan.facts)
        self.start = clock()
        self.partial = b""
        self.shown = ""
        self.stop: Stop | None = None

    def elapsed(self) -> float:
        return self.clock() - self.start

    def run(self) -> tuple[Verdict, float]:
        interrupted = False
        code: int | None = None
        with _sigterm_as_interrupt():
            # A Ctrl-C while the installer starts would leave it running unseen: hold the
            # signals until there is a process group to stop.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
            try:
                proc, master, tty = _spawn(self.plan)
            except BaseException:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
                raise
            try:
                try:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # arrives now, if sent
                    self._pump(proc, master, tty)
                    if self.stop is not None:
                        self.log.note(f"halb stops the installer: {self.stop.reason}")
                        code = stop_group(proc, signal.SIGTERM, self.limits.stop_grace)
                    else:
                        code = proc.wait()
                        code = code if code >= 0 else 128 - code
                except KeyboardInterrupt:
                    interrupted = True
                    self.log.note("interrupted: stopping the installer and its children")
                    code = stop_group(proc, signal.SIGINT, self.limits.stop_grace)
            finally:
                os.close(master)
        verdict = self.watcher.verdict(
            code, self.elapsed(), stop=self.stop, interrupted=interrupted
        )
        if self.partial and self.log.line(self.partial):
            self._echo(self.partial)
        self.log.note(
            f"exit code {code} after {clock_text(self.elapsed())}: {verdict.outcome}"
            + (f" at stage {verdict.stage}" if verdict.stage else "")
            + f": {verdict.why}"
        )
        self.log.close()
        return verdict, self.elapsed()

    def _pump(self, proc: subprocess.Popen[bytes], master: int, tty: str) -> None:
        last_output = self.clock()
        ended_at: float | None = None
        with self.console.status(self._status(), spinner="dots") as status:
            while self.stop is None:
                ready, _, _ = select.select([master], [], [], self.limits.tick)
                now = self.clock()
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        chunk = b""  # every writer closed the terminal
                    if not chunk:
                        return
                    last_output = now
                    self._take(chunk, master)
                elif proc.poll() is not None:
                    # The installer ended; a leftover child may hold the terminal open.
                    ended_at = ended_at if ended_at is not None else now
                    if now - ended_at >= 2 * self.limits.tick:
                        return
                elif now - last_output >= self.limits.input_wait and waiting_for_input(
                    proc.pid, tty
                ):
                    self.stop = self.watcher.waiting(self.shown)
                status.update(self._status())

    def _take(self, chunk: bytes, master: int) -> None:
        self.partial += chunk
        *lines, self.partial = self.partial.split(b"\n")
        now = self.clock()
        for raw in lines:
            raw = raw.rstrip(b"\r")
            text = visible(raw)
            if self.log.line(raw):
                self._echo(raw)
            if text.strip():
                self.shown = text.strip()
            self._act(self.watcher.line(text, now), master)
        cut = self.partial.rfind(b"\r", 0, len(self.partial) - 1)
        if cut >= 0 or len(self.partial) > PARTIAL_CAP:
            # A progress line redrawn in place: only its last state matters.
            self.partial = self.partial[cut + 1 :][-PARTIAL_CAP:]
        if self.partial:
            text = visible(self.partial)
            if text.strip():
                self.shown = text.strip()
            self._act(self.watcher.partial(text, now), master)

    def _echo(self, raw: bytes) -> None:
        text = Text.from_ansi(raw.decode("utf-8", errors="replace"))
        self.console.print(text, highlight=False, soft_wrap=True)

    def _act(self, events: list[StageStarted | Answer | Stop], master: int) -> None:
        for ev in events:
            if isinstance(ev, StageStarted):
                self._stage_started(ev)
            elif isinstance(ev, Answer):
                self.log.note(f"halb answers {ev.text!r} to {ev.prompt.name}")
                os.write(master, (ev.text + "\n").encode())
            elif self.stop is None:
                self.stop = ev

    def _stage_started(self, ev: StageStarted) -> None:
        done = self.watcher.stages[:-1]
        if done:
            prev = done[-1]
            took = (prev.ended or ev.at) - prev.started
            mark = {True: "done", False: "FAILED", None: "ended"}[prev.ok]
            self.console.print(
                Text(
                    f"stage {self.watcher.stage_label(prev)}: {mark} in {clock_text(took)}",
                    style="bold",
                )
            )
        label = self.watcher.stage_label()
        self.log.note(f"stage {label} at {clock_text(ev.at - self.start)}")
        self.console.print(
            Text(f"stage {label} (at {clock_text(ev.at - self.start)})", style="bold cyan")
        )

    def _status(self) -> Text:
        label = self.watcher.stage_label()
        t = Text(f"installer running {clock_text(self.elapsed())}", style="bold")
        if label:
            t.append(f"  stage {label}", style="cyan")
        if self.shown:
            t.append("  " + self.shown[:100], style="dim")
        return t


def default_log_path(base_dir: Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return base_dir / f"halb-install-{stamp}.log"


def run_installer(
    plan: LaunchPlan,
    log_path: Path,
    console: Console,
    *,
    limits: RunLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Run the plan to its end (or until it must be stopped); never hangs on a prompt."""
    limits = limits or RunLimits()
    log = InstallLog(log_path, limits.log_cap)
    log.note(f"halb install {datetime.now().isoformat(timespec='seconds')}")
    log.note(f"{plan.facts.title}: {plan.describe()}")
    try:
        verdict, seconds = _Session(plan, log, console, limits, clock).run()
    except BaseException:
        with contextlib.suppress(OSError):
            log.close()
        raise
    return RunResult(verdict, seconds, log_path)
