"""Run over the system OpenSSH client, one multiplexed connection per host.

The user's ssh config and known_hosts apply as they would to a plain `ssh`; the inventory
adds ansible_port, ansible_user, ansible_ssh_private_key_file and ansible_ssh_common_args.
A password goes to `sshpass -e` through the child's environment only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from halb.transport.base import (
    Privilege,
    Result,
    Transport,
    privilege_for,
    quote,
    scrub,
)

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
        if res.rc == 255 or (not self._connected and res.rc != 0):
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
        self.connect()
        return super().run(argv, input=input, timeout=timeout, check=check)

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        self.connect()
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
