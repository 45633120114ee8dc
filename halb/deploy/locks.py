"""Two deploys never overlap: a lock on this machine per spec, and one on each target that
lives only as long as our session to it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from halb.deploy.plan import sha256
from halb.errors import DeployError
from halb.paths import DEPLOY_STATE_DIR, HOLDER_FILE, LOCK_FILE
from halb.transport import Transport, sh

# -------------------------------------------------------------------------------- locks


class LocalLock:
    """One deploy of a given spec at a time on this machine (released when we exit)."""

    def __init__(self, config: Path) -> None:
        key = sha256(str(config.resolve()).encode())[:16]
        self.path = Path(tempfile.gettempdir()) / f"halb-deploy-{os.getuid()}-{key}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        # The file is removed on release, so a lock taken on a file that another deploy
        # has just released (and unlinked) counts for nothing: take it again on the new one.
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise DeployError(
                    f"another halb deploy is running on this machine ({holder}); "
                    f"wait for it to finish (lock {self.path})"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise DeployError(f"could not take the deploy lock {self.path}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {utc_now()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # unlinked while still held: no lock file is left behind in the temp folder
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


# The lock is held by a flock process on the target for as long as our session lives:
# a deploy that dies, or whose link drops, releases it by itself. A command given to
# `acquire` runs under the lock before the holder waits (the deploy's facts: no round
# trip of their own).
_LOCK_OUTER = (
    f"mkdir -p {DEPLOY_STATE_DIR} && chmod 700 {DEPLOY_STATE_DIR} && "
    f'h=$1 s=$2 && shift 2 && exec flock -n -E 75 {LOCK_FILE} sh -c "$s" sh "$h" "$@"'
)
_LOCK_INNER = (
    f'printf "%s\\n" "$1" > {HOLDER_FILE}; echo locked; shift; '
    'if [ $# -gt 0 ]; then "$@" </dev/null; fi; exec cat >/dev/null'
)
LOCK_BUSY = 75


class RemoteLock:
    def __init__(self, t: Transport, holder: str) -> None:
        self.t = t
        self.holder = holder
        self._proc: subprocess.Popen[bytes] | None = None

    def acquire(
        self,
        timeout: float = 30.0,
        then: Sequence[str] = (),
        done: Callable[[str], bool] = lambda out: True,
    ) -> str:
        """Take the lock; with `then`, run that command under it and return its output
        once `done(output)` says it is complete."""
        proc = self.t.popen(sh(_LOCK_OUTER, self.holder, _LOCK_INNER, *then))
        assert proc.stdout is not None
        fd, buf = proc.stdout.fileno(), b""
        deadline = time.monotonic() + timeout
        locked = False
        while True:
            head, nl, rest = buf.partition(b"\n")
            locked = locked or (nl == b"\n" and head == b"locked")
            if locked and done(rest.decode("utf-8", "replace")):
                self._proc = proc
                return rest.decode("utf-8", "replace")
            left = deadline - time.monotonic()
            chunk = os.read(fd, 65536) if left > 0 and select.select([fd], [], [], left)[0] else b""
            if not chunk:
                break
            buf += chunk
        stderr = _end(proc)
        if locked:
            raise self.t.error(f"the answer under {LOCK_FILE} was cut short: {stderr.strip()}")
        if proc.returncode == LOCK_BUSY:
            who = self.t.run(["cat", HOLDER_FILE], timeout=15).out.strip() or "unknown"
            raise DeployError(
                f"{self.t.name}: another deploy holds {LOCK_FILE} ({who}); wait for it to "
                "finish (the lock goes away when that deploy ends)"
            )
        raise self.t.error(f"cannot take {LOCK_FILE}: {stderr.strip() or 'no answer'}")

    def release(self) -> None:
        if self._proc is not None:
            _end(self._proc)
            self._proc = None


def _end(proc: subprocess.Popen[bytes]) -> str:
    """Stop a lock process; return what it wrote on stderr (read before the pipe closes)."""
    for s in (proc.stdin, proc.stdout):
        if s is not None:
            s.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err = b""
    if proc.stderr is not None and not proc.stderr.closed:
        if select.select([proc.stderr], [], [], 1)[0]:
            err = os.read(proc.stderr.fileno(), 65536)
        proc.stderr.close()
    return err.decode(errors="replace")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
