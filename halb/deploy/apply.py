"""The executor: applies one host's plan through its transport.

Upload each changed file to a temp file in the same directory with its final mode,
validate it on the target (any non-zero exit is a failure), back it up, rename it over
the old one, then reload (HAProxy: validate + USR2 to the master, never a restart) or
start. Verification failures roll the host back to its backup.

Round trips: the upload is one; every later step (validations, backup, renames, sysctl,
reloads, the check that both services run, the host's addresses) is one `chain`, which
stops at the first step that fails. Starting a service (a new host) keeps its own
commands: it waits for the daemon in a loop here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from halb import redirect
from halb.deploy.plan import Action, FileStep, HostPlan, ServiceAction
from halb.deploy.report import HostResult, HostState
from halb.errors import DeployError, HalbError
from halb.facts.ipaddr import IP_ADDR, IfAddr, parse_ip_addr
from halb.paths import BACKUP_DIR, KEEPALIVED_CONF, REDIRECT_NFT, RUNTIME_DIRS, SYSCTL_CONF
from halb.services import (
    CONFIG_OF,
    SERVICES,
    ServiceManager,
    ServiceName,
    tool_message,
    validate_argv,
)
from halb.transport import Result, Transport, chain, sh, split_batch

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


# First the $1 folders the files go to: made if missing, and leftovers of an interrupted
# deploy (never live files) dropped. Then each file: created private, filled with exactly
# its byte count (dd reads no further, so the next file's bytes stay on stdin), then given
# its mode. A drop mid-stream leaves a partial temp file and the live file as it was.
UPLOAD_SCRIPT = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do mkdir -p "$1" && rm -f "$1"/'
    + TMP_PREFIX
    + "* || exit 1; shift; n=$((n - 1)); done; "
    'umask 077; while [ $# -ge 3 ]; do : > "$1" && '
    'dd bs=1 count="$3" of="$1" status=none && [ "$(wc -c < "$1")" -eq "$3" ] && '
    'chmod "$2" "$1" || exit 1; shift 3; done'
)
_BACKUP_SCRIPT = (
    'b=$1; shift; umask 077; mkdir -p "$b"; '
    'for p in "$@"; do mkdir -p "$b$(dirname "$p")" && cp -a "$p" "$b$p" || exit 1; done'
)
_MOVE_SCRIPT = 'while [ $# -gt 1 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'


@dataclass(frozen=True)
class _Step:
    """One command of the chain, and what it changes if it ran (for the rollback)."""

    argv: list[str]
    kind: str  # validate | backup | move | sysctl | daemon-reload | reload | verify | addrs
    # | redirect
    files: tuple[FileStep, ...] = ()
    service: ServiceName | None = None


def _tmp_path(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}")


def _msg(r: Result) -> str:
    return tool_message(f"{r.err}\n{r.out}") if (r.err + r.out).strip() else f"exit {r.rc}"


def _text(out: str, rc: int) -> str:
    return tool_message(out) if out.strip() else f"exit {rc}"


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
        self.addrs: tuple[IfAddr, ...] | None = None  # read after the last step
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
        if changed:
            self.say(f"uploading {len(changed)} file(s)")
        for f in changed:
            self.applied.temps[f.path] = _tmp_path(f.path)
        self._upload(changed)
        steps: list[_Step] = []
        # Everything but keepalived.conf is checked before any live file is touched.
        for f in changed:
            if f.validator in ("haproxy", "script", "nft"):
                steps.append(self._validate_step(f, self.applied.temps[f.path]))
        updates = tuple(f for f in changed if f.action == Action.UPDATE)
        if updates:
            argv = sh(_BACKUP_SCRIPT, self.backup, *(f.path for f in updates))
            steps.append(_Step(argv, "backup", updates))
        scripts = tuple(f for f in changed if f.validator == "script")
        steps += self._move_steps(scripts)
        kcfg = next((f for f in hp.files if f.path == KEEPALIVED_CONF), None)
        if kcfg is not None and (kcfg.changed or scripts):
            steps.append(self._validate_step(kcfg, self.applied.temps.get(kcfg.path, kcfg.path)))
        steps += self._move_steps(tuple(f for f in changed if f.validator != "script"))
        if hp.sysctl:
            steps.append(_Step(["sysctl", "-q", "-p", SYSCTL_CONF], "sysctl"))
        reload_argv = self.svc.daemon_reload_argv() if hp.daemon_reload else None
        if reload_argv is not None:
            steps.append(_Step(reload_argv, "daemon-reload"))
        starts = any(s.action == ServiceAction.START for s in hp.services)
        if not starts:
            # a reload is its own step: validate, pid, signal, the new worker, one command
            for s in hp.services:
                if s.action == ServiceAction.RELOAD:
                    steps.append(_Step(self.svc.reload_argv(s.name), "reload", service=s.name))
            verify = self.svc.pids_argv(SERVICES)
            if verify is not None:
                steps += [_Step(verify, "verify"), _Step(IP_ADDR, "addrs")]
            # after HAProxy runs on its new config: the table goes in with the files
            steps.append(self._redirect_step())
        self._run_chain(steps)
        if hp.daemon_reload and reload_argv is None:
            self.svc.daemon_reload()
        if starts:
            self._services()
        if self.haproxy_pid is None:
            self.haproxy_pid = self._verify()
        if starts:
            self._run_chain([self._redirect_step()])

    def _redirect_step(self) -> _Step:
        """Load halb's nftables redirect with the VIPs healthy now, or remove a table a
        former spec left (halb/redirect.py)."""
        if any(f.path == REDIRECT_NFT for f in self.hp.files):
            return _Step(redirect.LOAD_ARGV, "redirect")
        return _Step(redirect.STALE_ARGV, "redirect")

    def _services(self) -> None:
        """Start what does not run (a new host), reload the rest, one command at a time."""
        hp = self.hp
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
        """The folders made and cleared, then every temp file: one round trip, sizes in
        argv, contents back to back on stdin."""
        dirs = sorted({str(PurePosixPath(f.path).parent) for f in self.hp.files})
        dirs += [d for d in RUNTIME_DIRS if d not in dirs]
        blobs = [f.content.encode() for f in files]
        args = [
            x
            for f, b in zip(files, blobs, strict=True)
            for x in (self.applied.temps[f.path], f"{f.mode:04o}", str(len(b)))
        ]
        self.t.run(
            sh(UPLOAD_SCRIPT, str(len(dirs)), *dirs, *args),
            input=b"".join(blobs),
            timeout=60,
            check=True,
        )

    def _validate_step(self, f: FileStep, path: str) -> _Step:
        if f.validator == "script":
            argv = ["sh", "-n", path]
        elif f.validator == "nft":
            argv = redirect.validate_argv(path)
        else:
            argv = validate_argv("haproxy" if f.validator == "haproxy" else "keepalived", path)
        return _Step(argv, "validate", (f,))

    def _move_steps(self, files: tuple[FileStep, ...]) -> list[_Step]:
        if not files:
            return []
        pairs = [p for f in files for p in (self.applied.temps[f.path], f.path)]
        return [_Step(sh(_MOVE_SCRIPT, *pairs), "move", files)]

    def _ran(self, step: _Step) -> None:
        """Record what a step changes once it may have run: if the link drops after a
        rename, the rollback still undoes it."""
        if step.kind == "move":
            self.applied.moved.extend(f for f in step.files if f not in self.applied.moved)
        elif step.kind == "reload" and step.service and step.service not in self.applied.reloaded:
            self.applied.reloaded.append(step.service)

    def _run_chain(self, steps: Sequence[_Step]) -> None:
        if not steps:
            return
        argv, marker = chain([s.argv for s in steps])
        timeout = 60.0 * len(steps) + 60
        try:
            res = self.t.run(argv, timeout=timeout)
        except HalbError:
            for s in steps:
                self._ran(s)
            raise
        parts = split_batch(res.out, marker, None) or []
        for step, (rc, out) in zip(steps, parts, strict=False):
            self._ran(step)
            self._check(step, rc, out)
        if len(parts) < len(steps):
            for s in steps[len(parts) :]:
                self._ran(s)
            raise self.t.error(
                f"the deploy's commands stopped after {len(parts)} of {len(steps)} steps: "
                f"{_msg(res)}"
            )

    def _check(self, step: _Step, rc: int, out: str) -> None:
        """Raise the deploy's error for a step that failed; report one that worked."""
        host = self.hp.host
        if step.kind == "validate":
            f = step.files[0]
            if rc != 0:
                raise DeployError(
                    f"{host}: {f.path} failed `{' '.join(step.argv[:2])}` "
                    f"(exit {rc}), nothing was replaced: {_text(out, rc)}"
                )
            self.say(f"validated {f.path}")
        elif step.kind == "move":
            if rc != 0:
                raise self.t.error(f"renaming the new files failed (exit {rc}): {_text(out, rc)}")
            for f in step.files:
                self.applied.temps.pop(f.path, None)
            self.say(f"installed {', '.join(f.path for f in step.files)}")
        elif step.kind == "sysctl":
            if rc != 0:
                raise DeployError(f"{host}: sysctl -p {SYSCTL_CONF} failed: {_text(out, rc)}")
        elif step.kind == "reload" and step.service is not None:
            err = self.svc.reload_error(step.service, rc, out)
            if err is not None:
                raise err
            self.say(f"reloaded {step.service}")
        elif step.kind == "verify":
            pids = self.svc.parse_pids(out if rc == 0 else "", SERVICES)
            for name in SERVICES:
                if pids[name] is None:
                    raise DeployError(f"{host}: {name} is not running after the deploy")
            self.haproxy_pid = pids["haproxy"]
        elif step.kind == "addrs":
            self.addrs = parse_ip_addr(out) if rc == 0 else None
        elif step.kind == "redirect":
            if rc != 0:
                raise DeployError(
                    f"{host}: loading halb's nftables redirect failed: {_text(out, rc)}"
                )
            self.say("nftables redirect loaded")
        elif rc != 0:
            raise self.t.error(f"{step.kind} failed (exit {rc}): {_text(out, rc)}")

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
            # no backup of a file: the chain stopped before it, so before its rename too
            script = (
                'b=$1; n=$2; shift 2; i=0; for p in "$@"; do i=$((i+1)); '
                'if [ $i -gt "$n" ]; then rm -f "$p"; elif [ -e "$b$p" ]; then '
                'cp -a "$b$p" "$p.halb-rb" && mv -f "$p.halb-rb" "$p" || exit 1; fi; done'
            )
            self.t.run(
                sh(script, self.backup, str(len(restore)), *restore, *remove),
                timeout=60,
                check=True,
            )
        if SYSCTL_CONF in restore:
            self.t.run(["sysctl", "-q", "-p", SYSCTL_CONF], timeout=30)
        # the former table back, or none: nothing of this deploy's redirect stays
        if REDIRECT_NFT in restore:
            self.t.run(redirect.LOAD_ARGV, timeout=30, check=True)
        elif REDIRECT_NFT in remove:
            self.t.run(redirect.DROP_ARGV, timeout=30, check=True)
        elif not any(f.path == REDIRECT_NFT for f in self.hp.files):
            self.t.run(redirect.RELOAD_IF_PRESENT_ARGV, timeout=30, check=True)
        for name in reversed(self.applied.started):
            self.svc.stop(name)
        for name in self.applied.reloaded:
            if CONFIG_OF[name] in restore:
                self.svc.reload(name)
        self.say("rolled back")
