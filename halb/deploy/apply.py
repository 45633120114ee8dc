"""The executor: applies one host's plan through its transport.

Upload each changed file to a temp file in the same directory with its final mode,
validate it on the target (any non-zero exit is a failure), back it up, rename it over
the old one, then reload (HAProxy: validate + USR2 to the master, never a restart) or
start. Verification failures roll the host back to its backup.

Round trips: the upload is one; every later step (validations, backup, renames, sysctl,
reloads, the check that both services run, the host's addresses, halb's nftables
redirect) is one `chain`, which
stops at the first step that fails. Starting a service (a new host) keeps its own
commands: it waits for the daemon in a loop here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import assert_never

from halb import redirect, vrrp_filter
from halb.deploy.plan import Action, FileStep, HostPlan, ServiceAction
from halb.deploy.report import HostResult, HostState
from halb.deploy.steps import (
    APT_LOCK_WAIT,
    BACKUP_SCRIPT,
    MOVE_SCRIPT,
    UPLOAD_SCRIPT,
    Step,
    StepKind,
    tmp_path,
)
from halb.drain import handover
from halb.errors import DeployError, HalbError
from halb.facts.ipaddr import IP_ADDR, IfAddr, parse_ip_addr
from halb.paths import (
    BACKUP_DIR,
    FAILBACK_SCRIPT,
    KEEPALIVED_CONF,
    REDIRECT_NFT,
    RUNTIME_DIRS,
    SYSCTL_CONF,
    VRRP_NFT,
)
from halb.services import (
    CONFIG_OF,
    SERVICES,
    ServiceManager,
    ServiceName,
    tool_message,
    validate_argv,
)
from halb.transport import Result, Transport, chain, sh, split_batch

HostProgress = Callable[[str, str], None]


# -------------------------------------------------------------------------------- apply


@dataclass
class _Applied:
    """What apply changed on a host, so a rollback can undo exactly that."""

    moved: list[FileStep] = field(default_factory=list)
    temps: dict[str, str] = field(default_factory=dict)
    started: list[ServiceName] = field(default_factory=list)
    reloaded: list[ServiceName] = field(default_factory=list)


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
        progress: HostProgress,
        stamp: str,
        pids: Mapping[str, int | None],
        own_macs: Mapping[str, str] | None = None,
    ) -> None:
        self.hp = hp
        self.own_macs = dict(own_macs or {})  # VIP interface -> MAC the filter was rendered with
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
            res.haproxy_pid = self._known_pids.get("haproxy")
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
        """Install and upload, then one of two ways: a host whose services run gets its
        whole change, reloads and checks in one chain; a host where a service must start
        gets the file steps in one chain, then its starts one command at a time."""
        hp = self.hp
        if hp.install:
            self._install()
        changed = hp.changed_files
        if changed:
            self.say(f"uploading {len(changed)} file(s)")
        for f in changed:
            self.applied.temps[f.path] = tmp_path(f.path)
        self._upload(changed)
        # halb's nftables redirect goes in once HAProxy runs on its new config
        if any(s.action == ServiceAction.START for s in hp.services):
            self._run_chain(self._file_steps())
            self._start_services()
            self.haproxy_pid = self._verify()
            self._run_chain([self._redirect_step(), *self._filter_steps()])
        else:
            self._run_chain(
                [
                    *self._file_steps(),
                    *self._reload_steps(),
                    self._redirect_step(),
                    *self._filter_steps(),
                ]
            )

    def _file_steps(self) -> list[Step]:
        """Validate, back up, rename into place, sysctl, daemon-reload: in that order, so
        everything but keepalived.conf is checked before any live file is touched."""
        hp = self.hp
        changed = hp.changed_files
        steps: list[Step] = []
        for f in changed:
            if f.validator in ("haproxy", "script", "nft"):
                steps.append(self._validate_step(f, self.applied.temps[f.path]))
        updates = tuple(f for f in changed if f.action == Action.UPDATE)
        if updates:
            argv = sh(BACKUP_SCRIPT, self.backup, *(f.path for f in updates))
            steps.append(Step(argv, StepKind.BACKUP, updates))
        scripts = tuple(f for f in changed if f.validator == "script")
        steps += self._move_steps(scripts)
        kcfg = next((f for f in hp.files if f.path == KEEPALIVED_CONF), None)
        if kcfg is not None and (kcfg.changed or scripts):
            steps.append(self._validate_step(kcfg, self.applied.temps.get(kcfg.path, kcfg.path)))
        steps += self._move_steps(tuple(f for f in changed if f.validator != "script"))
        if hp.sysctl:
            steps.append(Step(["sysctl", "-q", "-p", SYSCTL_CONF], StepKind.SYSCTL))
        # only a manager with unit files (systemd) has one to run
        reload_argv = self.svc.daemon_reload_argv() if hp.daemon_reload else None
        if reload_argv is not None:
            steps.append(Step(reload_argv, StepKind.DAEMON_RELOAD))
        return steps

    def _redirect_step(self) -> Step:
        """Load halb's nftables redirect with the VIPs healthy now, or remove a table a
        former spec left (halb/redirect.py)."""
        if any(f.path == REDIRECT_NFT for f in self.hp.files):
            return Step(redirect.LOAD_ARGV, StepKind.REDIRECT)
        return Step(redirect.STALE_ARGV, StepKind.REDIRECT)

    def _filter_steps(self) -> list[Step]:
        """Load halb's VRRP filter when its file changed or its table is not loaded
        (halb/vrrp_filter.py)."""
        if not self.hp.load_filter:
            return []
        return [Step(vrrp_filter.load_argv(self.own_macs), StepKind.VRRP_FILTER)]

    def _reload_steps(self) -> list[Step]:
        """Each reload its own step (validate, pid, signal, the new worker: one command),
        then the check that both services run, then the host's addresses."""
        steps = [
            Step(self.svc.reload_argv(s.name), StepKind.RELOAD, service=s.name)
            for s in self.hp.services
            if s.action == ServiceAction.RELOAD
        ]
        steps.append(Step(self.svc.pids_argv(SERVICES), StepKind.VERIFY))
        steps.append(Step(IP_ADDR, StepKind.ADDRS))
        return steps

    def _start_services(self) -> None:
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
            # a fresh server's daily apt job may hold dpkg's lock: wait for it
            argv = [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "-o",
                f"DPkg::Lock::Timeout={APT_LOCK_WAIT}",
                "install",
                "-y",
                *pkgs,
            ]
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

    def _validate_step(self, f: FileStep, path: str) -> Step:
        if f.validator == "script":
            argv = ["sh", "-n", path]
        elif f.validator == "nft":
            argv = redirect.validate_argv(path)
        else:
            argv = validate_argv("haproxy" if f.validator == "haproxy" else "keepalived", path)
        return Step(argv, StepKind.VALIDATE, (f,))

    def _move_steps(self, files: tuple[FileStep, ...]) -> list[Step]:
        if not files:
            return []
        pairs = [p for f in files for p in (self.applied.temps[f.path], f.path)]
        return [Step(sh(MOVE_SCRIPT, *pairs), StepKind.MOVE, files)]

    def _ran(self, step: Step) -> None:
        """Record what a step changes once it may have run: if the link drops after a
        rename, the rollback still undoes it."""
        if step.kind is StepKind.MOVE:
            self.applied.moved.extend(f for f in step.files if f not in self.applied.moved)
        elif (
            step.kind is StepKind.RELOAD
            and step.service
            and step.service not in self.applied.reloaded
        ):
            self.applied.reloaded.append(step.service)

    def _run_chain(self, steps: Sequence[Step]) -> None:
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

    def _check(self, step: Step, rc: int, out: str) -> None:
        """Raise the deploy's error for a step that failed; report one that worked."""
        host = self.hp.host
        match step.kind:
            case StepKind.VALIDATE:
                f = step.files[0]
                if rc != 0:
                    raise DeployError(
                        f"{host}: {f.path} failed `{' '.join(step.argv[:2])}` "
                        f"(exit {rc}), nothing was replaced: {_text(out, rc)}"
                    )
                self.say(f"validated {f.path}")
            case StepKind.MOVE:
                if rc != 0:
                    why = _text(out, rc)
                    raise self.t.error(f"renaming the new files failed (exit {rc}): {why}")
                for f in step.files:
                    self.applied.temps.pop(f.path, None)
                self.say(f"installed {', '.join(f.path for f in step.files)}")
            case StepKind.SYSCTL:
                if rc != 0:
                    raise DeployError(f"{host}: sysctl -p {SYSCTL_CONF} failed: {_text(out, rc)}")
            case StepKind.RELOAD:
                assert step.service is not None  # every reload step names its service
                err = self.svc.reload_error(step.service, rc, out)
                if err is not None:
                    raise err
                self.say(f"reloaded {step.service}")
            case StepKind.VERIFY:
                self.haproxy_pid = self._running(
                    self.svc.parse_pids(out if rc == 0 else "", SERVICES)
                )
            case StepKind.ADDRS:
                self.addrs = parse_ip_addr(out) if rc == 0 else None
            case StepKind.REDIRECT:
                if rc != 0:
                    raise DeployError(
                        f"{host}: loading halb's nftables redirect failed: {_text(out, rc)}"
                    )
                self.say("nftables redirect loaded")
            case StepKind.VRRP_FILTER:
                if rc != 0:
                    raise DeployError(
                        f"{host}: loading halb's VRRP filter failed: {_text(out, rc)}"
                    )
                self.say("VRRP filter loaded")
            case StepKind.BACKUP | StepKind.DAEMON_RELOAD:
                if rc != 0:
                    raise self.t.error(f"{step.kind} failed (exit {rc}): {_text(out, rc)}")
            case _:
                assert_never(step.kind)

    def _verify(self) -> int | None:
        """Both services up after the deploy (a round trip of its own); HAProxy's pid."""
        return self._running(self.svc.main_pids())

    def _running(self, pids: Mapping[ServiceName, int | None]) -> int | None:
        """HAProxy's master pid, once both services are seen running."""
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
        if FAILBACK_SCRIPT in remove:
            # failback.sh is going: nothing it set up on the host may stay behind
            self.t.run(handover.failback_undo_argv(), timeout=30)
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
        # the former VRRP filter back, or none
        if VRRP_NFT in restore:
            self.t.run(vrrp_filter.RELOAD_ARGV, timeout=30, check=True)
        elif VRRP_NFT in remove:
            self.t.run(vrrp_filter.DROP_ARGV, timeout=30, check=True)
        for name in reversed(self.applied.started):
            self.svc.stop(name)
        for name in self.applied.reloaded:
            if CONFIG_OF[name] in restore:
                self.svc.reload(name)
        self.say("rolled back")
