"""The transport interface and the parts every backend shares.

A backend only turns an argv into the local argv that runs it there (`_wrap`) and says
which environment the local child gets (`_env`). Quoting, privilege wrapping (sudo with the
password on stdin), timeouts, secret scrubbing and file transfer live here, once.
"""

from __future__ import annotations

import os
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from halb.errors import TransportError
from halb.shell import MASK as MASK
from halb.shell import batch as batch
from halb.shell import chain as chain
from halb.shell import describe as describe
from halb.shell import quote as quote
from halb.shell import scrub as scrub
from halb.shell import sh as sh
from halb.shell import split_batch as split_batch

# sudo reads the password line itself; when a NOPASSWD rule makes it skip the prompt, the
# password line reaches the command instead. The shell below (run by sudo) discards every
# line up to this marker, so the command's own stdin starts after it either way. `read`
# consumes one byte at a time from a pipe, so nothing past the marker is lost.
_STDIN_MARKER = "--halb-stdin--"
_SKIP_TO_MARKER = f'while IFS= read -r l; do [ "$l" = {_STDIN_MARKER} ] && break; done; exec "$@"'

# put: create with a private mode first so secret content is never world-readable, then
# set the final mode once the content is complete.
_PUT_SCRIPT = 'umask 077 && cat > "$1" && chmod "$2" "$1"'


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


@dataclass(frozen=True)
class Privilege:
    """How a command gets root on the target: already root, sudo -n, or sudo -S."""

    mode: str  # "none" | "sudo" | "sudo-password"
    password: str | None = field(default=None, repr=False)

    def wrap(self, argv: Sequence[str], data: bytes | None) -> tuple[list[str], bytes | None]:
        if self.mode == "none":
            return list(argv), data
        if self.mode == "sudo":
            return ["sudo", "-n", "--", *argv], data
        assert self.password is not None
        # -k: always prompt, so the password line is always consumed by sudo (or by the
        # marker loop under NOPASSWD), never by the command.
        wrapped = ["sudo", "-k", "-S", "-p", "", "--", *sh(_SKIP_TO_MARKER, *argv)]
        preamble = f"{self.password}\n{_STDIN_MARKER}\n".encode()
        return wrapped, preamble + (data or b"")


def privilege_for(user: str | None, become_password: str | None, *, is_root: bool) -> Privilege:
    if is_root or user == "root":
        return Privilege("none")
    if become_password:
        return Privilege("sudo-password", become_password)
    return Privilege("sudo")


class Transport(ABC):
    """Run commands and move files on one host, as root."""

    name: str

    def __init__(self, name: str, privilege: Privilege) -> None:
        self.name = name
        self.privilege = privilege

    # -- what a backend provides -------------------------------------------------------
    @abstractmethod
    def _wrap(self, argv: Sequence[str]) -> list[str]:
        """The local argv that runs argv on the target."""

    def _env(self) -> Mapping[str, str] | None:
        """Environment of the local child (None: inherit)."""
        return None

    def _secrets(self) -> tuple[str | None, ...]:
        return (self.privilege.password,)

    def _classify(self, res: Result, argv: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Raise TransportError when the result says the link failed, not the command."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the transport may be used again afterwards."""

    # -- shared ----------------------------------------------------------------------
    def error(self, message: str) -> TransportError:
        return TransportError(self.name, scrub(message, self._secrets()))

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        full, data = self.privilege.wrap(argv, input)
        local = self._wrap(full)
        try:
            proc = subprocess.Popen(
                local,
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env(),
                start_new_session=True,
            )
        except OSError as e:
            raise self.error(f"cannot start {local[0]}: {e.strerror}") from None
        try:
            out, errb = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise self.error(f"timed out after {timeout:g}s running {describe(argv)}") from None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        res = Result(proc.returncode, out, errb)
        self._classify(res, argv)
        if check:
            self._check(res, argv)
        return res

    def _check(self, res: Result, argv: Sequence[str]) -> None:
        if not res.ok:
            msg = res.err.strip() or res.out.strip() or "no output"
            raise self.error(f"{describe(argv)} exited {res.rc}: {msg}")

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start a long-running command with stdin/stdout pipes (e.g. a lock holder).

        Closing its stdin is how the caller ends it.
        """
        full, data = self.privilege.wrap(argv, b"")
        proc = subprocess.Popen(
            self._wrap(full),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env(),
            start_new_session=True,
        )
        assert proc.stdin is not None
        if data:
            proc.stdin.write(data)
            proc.stdin.flush()
        return proc

    def put(self, path: str, data: bytes, mode: int, *, timeout: float | None = 60) -> None:
        """Write data to exactly path (created private, then given mode)."""
        self.run(sh(_PUT_SCRIPT, path, f"{mode:04o}"), input=data, timeout=timeout, check=True)

    def get(self, path: str, *, timeout: float | None = 60) -> bytes:
        return self.run(["cat", "--", path], timeout=timeout, check=True).stdout

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
