"""The executor: applies one host's plan through its transport.

Upload each changed file to a temp file in the same directory with its final mode,
validate it on the target (any non-zero exit is a failure), back it up, rename it over
the old one, then reload (HAProxy: validate + USR2 to the master, never a restart) or
start. Verification failures roll the host back to its backup.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from halb.deploy.plan import Action, FileStep, HostPlan, ServiceAction
from halb.deploy.report import HostResult, HostState
from halb.errors import DeployError, HalbError
from halb.paths import BACKUP_DIR, KEEPALIVED_CONF, RUNTIME_DIRS, SYSCTL_CONF
from halb.services import (
    CONFIG_OF,
    SERVICES,
    ServiceManager,
    ServiceName,
    tool_message,
    validate_argv,
)
from halb.transport import Result, Transport, sh

TMP_PREFIX = ".halb-tmp-"

Progress = Callable[[str, str], None]


# -------------------------------------------------------------------------------- apply


@dataclass
class _Applied:
    """What apply changed on a host, so a rollback can undo exactly that."""

    moved: list[FileStep] = field(default_factory=list)
    temps: dict[str, str] = field(default_factory=dict)
    started: list[ServiceName] = field(default_factory=list)
    reloaded: list[ServiceName] = field(default_factory=list)


# Each file: created private, filled with exactly its byte count (dd reads no further, so
# the next file's bytes stay on stdin), then given its mode. A drop mid-stream leaves a
# partial temp file and the live file as it was.
UPLOAD_SCRIPT = (
    'umask 077; while [ $# -ge 3 ]; do : > "$1" && '
    'dd bs=1 count="$3" of="$1" status=none && [ "$(wc -c < "$1")" -eq "$3" ] && '
    'chmod "$2" "$1" || exit 1; shift 3; done'
)


def _tmp_path(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}")


def _msg(r: Result) -> str:
    return tool_message(f"{r.err}\n{r.out}") if (r.err + r.out).strip() else f"exit {r.rc}"


class HostDeployer:
    """Applies one host's plan through its transport."""

    def __init__(
        self,
        hp: HostPlan,
        t: Transport,
        svc: ServiceManager,
        progress: Progress,
        stamp: str,
        pids: Mapping[str, int | None] | None = None,
    ) -> None:
        self.hp = hp
        self.t = t
        self.svc = svc
        self._progress = progress
        self.backup = f"{BACKUP_DIR}/{stamp}"
        self.applied = _Applied()
        self.haproxy_pid: int | None = None
        self._known_pids = pids  # read with the facts, under this deploy's lock

    def say(self, message: str) -> None:
        self._progress(self.hp.host, message)

    def run(self) -> HostResult:
        hp = self.hp
        res = HostResult(hp.host, files={f.path: f.action.value for f in hp.files})
        t0 = time.monotonic()
        if not hp.changed:
            res.status = HostState.UNCHANGED
            known = self._known_pids
            res.haproxy_pid = (
                known["haproxy"] if known and "haproxy" in known else self.svc.main_pid("haproxy")
            )
            res.services = {s.name: "none" for s in hp.services}
            self.say("unchanged")
            res.seconds = round(time.monotonic() - t0, 3)
            return res
        try:
            self._apply()
            res.status = HostState.CHANGED
            res.services = {s.name: s.action.value for s in hp.services}
            res.backup = (
                self.backup if any(f.action == Action.UPDATE for f in self.applied.moved) else None
            )
            res.haproxy_pid = self.haproxy_pid
            self.say(f"done in {time.monotonic() - t0:.1f}s")
        except HalbError as e:
            res.error = str(e)
            self.say(f"FAILED: {e}")
            a = self.applied
            if a.moved or a.started or a.reloaded:
                res.status = HostState.ROLLED_BACK
                try:
                    self.rollback()
                except HalbError as re_:
                    res.status = HostState.FAILED
                    res.rollback_error = str(re_)
                    self.say(f"ROLLBACK FAILED: {re_}")
            else:
                res.status = HostState.FAILED
                try:
                    self._drop_temps()
                except HalbError as re_:
                    # the live files were never touched; a later deploy drops the temps
                    res.rollback_error = f"temp files left: {re_}"
        res.seconds = round(time.monotonic() - t0, 3)
        return res

    # -- steps -----------------------------------------------------------------------
    def _apply(self) -> None:
        hp = self.hp
        if hp.install:
            self._install()
        changed = hp.changed_files
        dirs = sorted({str(PurePosixPath(f.path).parent) for f in hp.files})
        # leftovers of an interrupted deploy are never live files: drop them first
        self.t.run(
            sh(
                'for d in "$@"; do mkdir -p "$d" && rm -f "$d"/' + TMP_PREFIX + "*; done",
                *dirs,
                *RUNTIME_DIRS,
            ),
            timeout=30,
            check=True,
        )
        if changed:
            self.say(f"uploading {len(changed)} file(s)")
        for f in changed:
            self.applied.temps[f.path] = _tmp_path(f.path)
        self._upload(changed)
        # Everything but keepalived.conf is checked before any live file is touched.
        for f in changed:
            if f.validator in ("haproxy", "script"):
                self._validate(f, self.applied.temps[f.path])
        self._backup([f for f in changed if f.action == Action.UPDATE])
        scripts = [f for f in changed if f.validator == "script"]
        self._move(scripts)
        kcfg = next((f for f in hp.files if f.path == KEEPALIVED_CONF), None)
        if kcfg is not None and (kcfg.changed or scripts):
            self._validate(kcfg, self.applied.temps.get(kcfg.path, kcfg.path))
        self._move([f for f in changed if f.validator != "script"])
        if hp.sysctl:
            r = self.t.run(["sysctl", "-q", "-p", SYSCTL_CONF], timeout=30)
            if not r.ok:
                raise DeployError(f"{hp.host}: sysctl -p {SYSCTL_CONF} failed: {_msg(r)}")
        if hp.daemon_reload:
            self.svc.daemon_reload()
        for s in hp.services:
            if s.action == ServiceAction.START:
                self.applied.started.append(s.name)
                if s.name in hp.install and self.svc.main_pid(s.name) is not None:
                    # Its package started it with the packaged config (Debian does):
                    # a plain start would leave that running.
                    self.say(f"restarting {s.name} (started by its package)")
                    self.svc.restart(s.name)
                else:
                    self.say(f"starting {s.name}")
                    self.svc.start(s.name)
                self.svc.enable(s.name)
            elif s.action == ServiceAction.RELOAD:
                self.say(f"reloading {s.name}")
                self.applied.reloaded.append(s.name)
                self.svc.reload(s.name)
        self.haproxy_pid = self._verify()

    def _install(self) -> None:
        hp = self.hp
        pkgs = list(hp.install)
        self.say(f"installing {' '.join(pkgs)}")
        if hp.package_manager == "apt":
            argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", *pkgs]
            r = self.t.run(argv, timeout=600)
            if not r.ok:
                self.t.run(["apt-get", "update"], timeout=600)
                r = self.t.run(argv, timeout=600)
        elif hp.package_manager == "dnf":
            r = self.t.run(
                sh(
                    'if command -v dnf >/dev/null; then dnf -y install "$@"; '
                    'else yum -y install "$@"; fi',
                    *pkgs,
                ),
                timeout=600,
            )
        else:
            raise DeployError(
                f"{hp.host}: {', '.join(pkgs)} missing and no known package manager "
                "(install them, or check /etc/os-release)"
            )
        if not r.ok:
            raise DeployError(f"{hp.host}: installing {' '.join(pkgs)} failed: {_msg(r)}")

    def _upload(self, files: Sequence[FileStep]) -> None:
        """All temp files in one round trip: sizes in argv, contents back to back on stdin."""
        if not files:
            return
        blobs = [f.content.encode() for f in files]
        args = [
            x
            for f, b in zip(files, blobs, strict=True)
            for x in (self.applied.temps[f.path], f"{f.mode:04o}", str(len(b)))
        ]
        self.t.run(sh(UPLOAD_SCRIPT, *args), input=b"".join(blobs), timeout=60, check=True)

    def _validate(self, f: FileStep, path: str) -> None:
        if f.validator == "script":
            argv = ["sh", "-n", path]
        elif f.validator in ("haproxy", "keepalived"):
            argv = validate_argv("haproxy" if f.validator == "haproxy" else "keepalived", path)
        else:
            return
        r = self.t.run(argv, timeout=60)
        if not r.ok:
            raise DeployError(
                f"{self.hp.host}: {f.path} failed `{' '.join(argv[:2])}` "
                f"(exit {r.rc}), nothing was replaced: {_msg(r)}"
            )
        self.say(f"validated {f.path}")

    def _backup(self, files: Sequence[FileStep]) -> None:
        if not files:
            return
        script = (
            'b=$1; shift; umask 077; mkdir -p "$b"; '
            'for p in "$@"; do mkdir -p "$b$(dirname "$p")" && cp -a "$p" "$b$p" || exit 1; done'
        )
        self.t.run(sh(script, self.backup, *(f.path for f in files)), timeout=60, check=True)

    def _move(self, files: Sequence[FileStep]) -> None:
        if not files:
            return
        # recorded first: if the link drops after a rename, the rollback still undoes it
        self.applied.moved.extend(files)
        pairs = [p for f in files for p in (self.applied.temps[f.path], f.path)]
        script = 'while [ $# -gt 1 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'
        self.t.run(sh(script, *pairs), timeout=30, check=True)
        for f in files:
            del self.applied.temps[f.path]
        self.say(f"installed {', '.join(f.path for f in files)}")

    def _verify(self) -> int | None:
        """Both services up after the deploy; returns HAProxy's master pid."""
        pids = self.svc.main_pids()
        for name in SERVICES:
            if pids[name] is None:
                raise DeployError(f"{self.hp.host}: {name} is not running after the deploy")
        return pids["haproxy"]

    # -- undo ------------------------------------------------------------------------
    def _drop_temps(self) -> None:
        if self.applied.temps:
            self.t.run(["rm", "-f", *self.applied.temps.values()], timeout=30)
            self.applied.temps.clear()

    def rollback(self) -> None:
        """Put back the files this deploy replaced, then bring the services back."""
        self.say("rolling back")
        self._drop_temps()
        restore = [f.path for f in self.applied.moved if f.action == Action.UPDATE]
        remove = [f.path for f in self.applied.moved if f.action == Action.CREATE]
        if restore or remove:
            script = (
                'b=$1; n=$2; shift 2; i=0; for p in "$@"; do i=$((i+1)); '
                'if [ $i -le "$n" ]; then cp -a "$b$p" "$p.halb-rb" && mv -f "$p.halb-rb" "$p" '
                '|| exit 1; else rm -f "$p"; fi; done'
            )
            self.t.run(
                sh(script, self.backup, str(len(restore)), *restore, *remove),
                timeout=60,
                check=True,
            )
        if SYSCTL_CONF in restore:
            self.t.run(["sysctl", "-q", "-p", SYSCTL_CONF], timeout=30)
        for name in reversed(self.applied.started):
            self.svc.stop(name)
        for name in self.applied.reloaded:
            if CONFIG_OF[name] in restore:
                self.svc.reload(name)
        self.say("rolled back")
