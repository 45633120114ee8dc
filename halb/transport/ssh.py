"""Run over the system OpenSSH client, one multiplexed connection per host.

The user's ssh config and known_hosts apply as they would to a plain `ssh`; the inventory
adds ansible_port, ansible_user, ansible_ssh_private_key_file and ansible_ssh_common_args.
A password goes to `sshpass -e` through the child's environment only.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence

from halb.transport.base import (
    Privilege,
    Result,
    Transport,
    privilege_for,
    quote,
    scrub,
    sh,
)

# The first command on a new connection goes through this: it says who we logged in as
# and, when that is root (no sudo needed), runs the command at once, saving the round trip
# of a separate `id -u`. Otherwise the command does not run (exit 86): the transport
# settles sudo first and runs it again.
_HELLO = 'u=$(id -u) && echo "halb-uid $u" && [ "$u" = 0 ] || exit 86; exec "$@"'
_HELLO_PREFIX = b"halb-uid "

# sshpass's own exit codes, which it returns instead of ssh's when authentication fails.
_SSHPASS_ERRORS = {
    5: "the password was rejected",
    6: "the host key is not known (add it to known_hosts)",
}


class SshTransport(Transport):
    def __init__(
        self,
        name: str,
        address: str,
        *,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        become_password: str | None = None,
        private_key_file: str | None = None,
        common_args: Sequence[str] = (),
        connect_timeout: int = 10,
    ) -> None:
        # Privilege is decided after connecting when the remote user is not given.
        super().__init__(name, Privilege("none"))
        self.address = address
        self.port = port
        self.user = user
        self._password = password
        self._become_password = become_password
        self.private_key_file = private_key_file
        self.common_args = tuple(common_args)
        self.connect_timeout = connect_timeout
        self._control_dir: str | None = None
        self._connected = False

    def __repr__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"<SshTransport {self.name} {who}{self.address}:{self.port or 22}>"

    # -- argv ------------------------------------------------------------------------
    def _control_path(self) -> str:
        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="halb-ssh-")  # mode 0700
        return os.path.join(self._control_dir, "%C")

    def ssh_argv(self, extra: Sequence[str] = ()) -> list[str]:
        """The ssh command line up to and including the destination."""
        argv: list[str] = []
        if self._password:
            argv += ["sshpass", "-e"]
        argv += [
            "ssh",
            "-o", "ControlMaster=auto",
            "-o", "ControlPersist=60s",
            "-o", f"ControlPath={self._control_path()}",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
        ]  # fmt: skip
        if self._password:
            argv += ["-o", "NumberOfPasswordPrompts=1"]
        else:
            argv += ["-o", "BatchMode=yes"]
        if self.private_key_file:
            argv += ["-i", os.path.expanduser(self.private_key_file)]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        argv += [*self.common_args, *extra, "--", self.address]
        return argv

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return [*self.ssh_argv(), quote(argv)]

    def _env(self) -> Mapping[str, str] | None:
        if not self._password:
            return None
        return {**os.environ, "SSHPASS": self._password}

    def _secrets(self) -> tuple[str | None, ...]:
        return (self._password, self._become_password)

    # -- connection --------------------------------------------------------------------
    def _classify(self, res: Result, argv: Sequence[str]) -> None:
        # Before we are connected any failure is the link's, unless the hello answered.
        answered = res.stdout.startswith(_HELLO_PREFIX)
        if res.rc == 255 or (not self._connected and res.rc != 0 and not answered):
            raise self.error(self._why(res))

    def _why(self, res: Result) -> str:
        lines = [
            ln
            for ln in scrub(res.err, self._secrets()).splitlines()
            if ln.strip() and not ln.startswith(("Warning: Permanently added", "**"))
        ]
        detail = "; ".join(lines[-3:])
        if self._password and res.rc in _SSHPASS_ERRORS and not self._connected:
            detail = _SSHPASS_ERRORS[res.rc]
        where = f"{self.user + '@' if self.user else ''}{self.address}:{self.port or 22}"
        return f"ssh to {where} failed: {detail or f'exit {res.rc}'}"

    def connect(self) -> None:
        """Open the master connection and decide how to become root."""
        if self._connected:
            return
        self.privilege = Privilege("none")
        res = super().run(["id", "-u"], timeout=self.connect_timeout + 20)
        uid = res.out.strip()
        if not uid.isdigit():
            raise self.error(f"unexpected answer to `id -u`: {uid[:40]!r}")
        self._connected = True
        self.privilege = privilege_for(self.user, self._become_password, is_root=uid == "0")
        if self.privilege.mode != "none":
            self._check_sudo()

    def _hello_uid(self, line: bytes) -> int:
        """The uid from the hello's first line; we are connected from here on."""
        text = line.decode("utf-8", "replace").strip()
        uid = text.removeprefix(_HELLO_PREFIX.decode())
        if not text.startswith(_HELLO_PREFIX.decode()) or not uid.isdigit():
            raise self.error(f"unexpected answer to `id -u`: {text[:40]!r}")
        self._connected = True
        self.privilege = privilege_for(self.user, self._become_password, is_root=uid == "0")
        if self.privilege.mode != "none":
            self._check_sudo()
        return int(uid)

    def _run_first(
        self, argv: Sequence[str], input: bytes | None, timeout: float | None, check: bool
    ) -> Result | None:
        """Connect and run argv in one round trip when the login is root; None when it is
        not (argv did not run; sudo is settled, run it again)."""
        self.privilege = Privilege("none")
        wait = None if timeout is None else timeout + self.connect_timeout + 20
        res = Transport.run(self, sh(_HELLO, *argv), input=input, timeout=wait)
        first, _, rest = res.stdout.partition(b"\n")
        if self._hello_uid(first) != 0:
            return None
        res = Result(res.rc, rest, res.stderr)
        if res.rc == 255:
            raise self.error(self._why(res))
        if check:
            self._check(res, argv)
        return res

    def _popen_first(self, argv: Sequence[str]) -> subprocess.Popen[bytes] | None:
        """`_run_first` for a long-running command: returns it running when the login is
        root, its output starting after the hello's line."""
        self.privilege = Privilege("none")
        proc = Transport.popen(self, sh(_HELLO, *argv))
        assert proc.stdout is not None
        # Byte by byte, unbuffered: whatever follows stays in the pipe for the caller.
        fd, line = proc.stdout.fileno(), b""
        deadline = time.monotonic() + self.connect_timeout + 20
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
        if not line.startswith(_HELLO_PREFIX):
            rc, errb = self._reap(proc)
            raise self.error(self._why(Result(rc, line, errb)))
        try:
            uid = self._hello_uid(line)
        except BaseException:
            self._reap(proc)
            raise
        if uid != 0:
            self._reap(proc)  # it exits 86 by itself: the command did not run
            return None
        return proc

    def _reap(self, proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
        """Wait for a first command that ended (or failed to connect); its stderr.
        (communicate closes its stdin.)"""
        try:
            _, errb = proc.communicate(timeout=self.connect_timeout + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, errb = proc.communicate()
        return proc.returncode, errb or b""

    def _check_sudo(self) -> None:
        """Fail at once, with a clear message, when sudo will not make us root.

        Later commands cannot tell a refusal from their own failure, and a long-running
        one (popen) keeps stdin open, so a sudo that got a wrong password would wait there
        for another try.
        """
        res = super().run(["true"], timeout=self.connect_timeout + 20)
        if res.ok:
            return
        lines = [ln.strip() for ln in scrub(res.err, self._secrets()).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit {res.rc}"
        if "incorrect password" in res.err:
            detail += "; the sudo password (ansible_become_pass) is wrong"
        elif "password is required" in res.err:
            detail += "; set ansible_become_pass"
        self.close()  # the next command connects and checks again
        raise self.error(f"sudo as {self.user} refused to run commands as root: {detail}")

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        if not self._connected:
            res = self._run_first(argv, input, timeout, check)
            if res is not None:
                return res
        return super().run(argv, input=input, timeout=timeout, check=check)

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        if not self._connected:
            proc = self._popen_first(argv)
            if proc is not None:
                return proc
        return super().popen(argv)

    def close(self) -> None:
        if self._control_dir is None:
            return
        if self._connected:
            subprocess.run(
                self.ssh_argv(["-O", "exit"]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self._env(),
                timeout=10,
                check=False,
            )
        shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None
        self._connected = False
