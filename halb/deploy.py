"""Deploy rendered files to the LB hosts: plan first as data, then apply it safely.

Plan: what the hosts have now (sha256 and mode of each target file, which services run,
which packages are missing, live sysctl values) against what was rendered gives small
frozen records; `compute_plan` is pure.

Apply, per host and in parallel across hosts: upload each changed file to a temp file in
the same directory with its final mode, validate it on the target (any non-zero exit is a
failure), back it up, rename it over the old one, then reload (HAProxy: validate + USR2 to
the master, never a restart) or start. Verification failures roll the host back to its
backup. A host whose files are unchanged gets no upload and no reload.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import os
import re
import secrets
import select
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from halb.errors import DeployError, HalbError, InputError
from halb.facts.ipaddr import IP_ADDR, IfAddr, holders, parse_ip_addr
from halb.facts.target import TargetFacts, facts_argv, parse_facts_output
from halb.inventory import Host
from halb.paths import (
    BACKUP_DIR,
    DEPLOY_STATE_DIR,
    HAPROXY_CFG,
    HOLDER_FILE,
    KEEPALIVED_CONF,
    LOCK_FILE,
    RUNTIME_DIRS,
    SYSCTL_CONF,
    SYSTEMD_DIR,
    dropin_dir,
)
from halb.render import RenderedFile
from halb.services import (
    SERVICES,
    ServiceManager,
    ServiceName,
    manager,
    tool_message,
    validate_argv,
)
from halb.transport import Transport, TransportFactory, for_host, sh
from halb.transport.base import MASK, scrub

TMP_PREFIX = ".halb-tmp-"

Progress = Callable[[str, str], None]


def _quiet(host: str, message: str) -> None:
    pass


# ------------------------------------------------------------------------------- records


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


class ServiceAction(StrEnum):
    NONE = "none"
    START = "start"
    RELOAD = "reload"


@dataclass(frozen=True)
class FileStep:
    path: str
    action: Action
    mode: int
    sha256: str
    old_sha256: str | None
    old_mode: int | None
    content: str = field(repr=False, compare=False)

    @property
    def changed(self) -> bool:
        return self.action != Action.UNCHANGED

    @property
    def validator(self) -> str:
        """How the target checks this file before it replaces the old one."""
        if self.path == HAPROXY_CFG:
            return "haproxy"
        if self.path == KEEPALIVED_CONF:
            return "keepalived"
        if self.path.endswith(".sh"):
            return "script"
        return "none"


@dataclass(frozen=True)
class ServiceStep:
    name: ServiceName
    action: ServiceAction


@dataclass(frozen=True)
class HostPlan:
    host: str
    manager: str
    files: tuple[FileStep, ...]
    services: tuple[ServiceStep, ...]
    sysctl: bool  # apply SYSCTL_CONF
    install: tuple[str, ...]
    package_manager: str | None
    daemon_reload: bool

    @property
    def changed_files(self) -> tuple[FileStep, ...]:
        return tuple(f for f in self.files if f.changed)

    @property
    def changed(self) -> bool:
        return bool(self.changed_files or self.install or self.sysctl) or any(
            s.action != ServiceAction.NONE for s in self.services
        )

    def service(self, name: str) -> ServiceAction:
        return next((s.action for s in self.services if s.name == name), ServiceAction.NONE)


@dataclass(frozen=True)
class Plan:
    hosts: tuple[HostPlan, ...]

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            h.host: {
                "files": {f.path: f.action.value for f in h.files},
                "services": {s.name: s.action.value for s in h.services},
                "sysctl": h.sysctl,
                "install": list(h.install),
                "changed": h.changed,
            }
            for h in self.hosts
        }


# --------------------------------------------------------------------------- pure plan

# scripts first: keepalived.conf names them and its check needs them in place
_ORDER = {"script": 0, "none": 1, "haproxy": 2, "keepalived": 3}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sysctl_keys(content: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in content.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def package_manager(os_ids: Sequence[str]) -> str | None:
    ids = set(os_ids)
    if ids & {"debian", "ubuntu"}:
        return "apt"
    if ids & {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "openEuler"}:
        return "dnf"
    return None


def plan_host(
    host: str, kind: str, files: Mapping[str, RenderedFile], facts: TargetFacts, *, install: bool
) -> HostPlan:
    steps: list[FileStep] = []
    for path, rf in files.items():
        data = rf.content.encode()
        new = sha256(data)
        old = facts.files.get(path)
        if old is None:
            action = Action.CREATE
        elif old.sha256 != new or old.mode != rf.mode:
            action = Action.UPDATE
        else:
            action = Action.UNCHANGED
        steps.append(
            FileStep(
                path,
                action,
                rf.mode,
                new,
                old.sha256 if old else None,
                old.mode if old else None,
                rf.content,
            )
        )
    steps.sort(key=lambda s: (_ORDER[s.validator], s.path))
    changed = {s.path for s in steps if s.changed}

    services: list[ServiceStep] = []
    for name in SERVICES:
        cfg = HAPROXY_CFG if name == "haproxy" else KEEPALIVED_CONF
        dropin = dropin_dir(name)
        if not facts.running.get(name, False):
            act = ServiceAction.START
        elif cfg in changed or any(p.startswith(dropin) for p in changed):
            act = ServiceAction.RELOAD
        else:
            act = ServiceAction.NONE
        services.append(ServiceStep(name, act))

    sysctl_file = files.get(SYSCTL_CONF)
    want = sysctl_keys(sysctl_file.content) if sysctl_file else {}
    sysctl = bool(want) and (
        SYSCTL_CONF in changed or any(facts.sysctl.get(k) != v for k, v in want.items())
    )
    return HostPlan(
        host=host,
        manager=kind,
        files=tuple(steps),
        services=tuple(services),
        sysctl=sysctl,
        install=facts.missing if install else (),
        package_manager=package_manager(facts.os_ids),
        daemon_reload=any(p.startswith(SYSTEMD_DIR) for p in changed),
    )


def compute_plan(
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    facts: Mapping[str, TargetFacts],
    managers: Mapping[str, str],
    *,
    install: bool = True,
) -> Plan:
    return Plan(
        tuple(
            plan_host(h, managers[h], files, facts[h], install=install)
            for h, files in rendered.items()
        )
    )


_AUTH_PASS = re.compile(r"^(\s*auth_pass\s+)\S.*$", re.M)


def mask_secrets(text: str, extra: Sequence[str | None] = ()) -> str:
    return scrub(_AUTH_PASS.sub(rf"\g<1>{MASK}", text), extra)


def plan_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    for h in plan.hosts:
        if not h.changed:
            lines.append(f"{h.host}: unchanged")
            continue
        lines.append(f"{h.host}:")
        if h.install:
            lines.append(f"  install {' '.join(h.install)} ({h.package_manager or '?'})")
        for f in h.files:
            mode = (
                f" mode {f.old_mode:04o} -> {f.mode:04o}"
                if (f.action == Action.UPDATE and f.old_mode != f.mode)
                else ""
            )
            lines.append(f"  {f.action.value:9} {f.path}{mode}")
        if h.sysctl:
            lines.append(f"  sysctl    {SYSCTL_CONF}")
        for s in h.services:
            if s.action != ServiceAction.NONE:
                lines.append(f"  {s.action.value:9} {s.name}")
    return lines


def diff_lines(
    plan: Plan, old: Mapping[tuple[str, str], str], secrets_: Sequence[str | None] = ()
) -> list[str]:
    """Unified diffs of changed files; the VRRP password and other secrets masked."""
    out: list[str] = []
    for h in plan.hosts:
        for f in h.changed_files:
            before = mask_secrets(old.get((h.host, f.path), ""), secrets_).splitlines(True)
            after = mask_secrets(f.content, secrets_).splitlines(True)
            label = f"{h.host}:{f.path}"
            if before == after:
                out.append(f"# {label}: {f.action.value} (only the mode or a masked secret)")
                continue
            out += [
                ln.rstrip("\n")
                for ln in difflib.unified_diff(
                    before,
                    after,
                    "/dev/null" if f.action == Action.CREATE else f"a/{label}",
                    f"b/{label}",
                )
            ]
    return out


# ------------------------------------------------------------------------ remote facts


def gather_facts(
    t: Transport, svc: ServiceManager, files: Mapping[str, RenderedFile]
) -> TargetFacts:
    paths = list(files)
    keys = list(sysctl_keys(files[SYSCTL_CONF].content)) if SYSCTL_CONF in files else []
    res = t.run(facts_argv(paths, keys), timeout=60, check=True)
    remote, missing, os_ids, live = parse_facts_output(paths, res.out)
    pids = svc.main_pids()
    running: dict[str, bool] = {n: n not in missing and pids[n] is not None for n in SERVICES}
    return TargetFacts(remote, running, missing, os_ids, live)


# -------------------------------------------------------------------------------- locks


class LocalLock:
    """One deploy of a given spec at a time on this machine (released when we exit)."""

    def __init__(self, config: Path) -> None:
        key = sha256(str(config.resolve()).encode())[:16]
        self.path = Path(tempfile.gettempdir()) / f"halb-deploy-{os.getuid()}-{key}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {_now()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# The lock is held by a flock process on the target for as long as our session lives:
# a deploy that dies, or whose link drops, releases it by itself.
_LOCK_OUTER = (
    f"mkdir -p {DEPLOY_STATE_DIR} && chmod 700 {DEPLOY_STATE_DIR} && "
    f'exec flock -n -E 75 {LOCK_FILE} sh -c "$2" sh "$1"'
)
_LOCK_INNER = f'printf "%s\\n" "$1" > {HOLDER_FILE}; echo locked; exec cat >/dev/null'
LOCK_BUSY = 75


class RemoteLock:
    def __init__(self, t: Transport, holder: str) -> None:
        self.t = t
        self.holder = holder
        self._proc: subprocess.Popen[bytes] | None = None

    def acquire(self, timeout: float = 30.0) -> None:
        proc = self.t.popen(sh(_LOCK_OUTER, self.holder, _LOCK_INNER))
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if line == "locked":
            self._proc = proc
            return
        stderr = _end(proc)
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


# -------------------------------------------------------------------------------- apply


@dataclass
class HostResult:
    host: str
    status: str = "pending"  # unchanged | changed | failed | rolled-back
    error: str | None = None
    rollback_error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    backup: str | None = None
    haproxy_pid: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("unchanged", "changed")


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
_UPLOAD = (
    'umask 077; while [ $# -ge 3 ]; do : > "$1" && '
    'dd bs=1 count="$3" of="$1" status=none && [ "$(wc -c < "$1")" -eq "$3" ] && '
    'chmod "$2" "$1" || exit 1; shift 3; done'
)


def _tmp_path(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}")


def _msg(r: Any) -> str:
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
    ) -> None:
        self.hp = hp
        self.t = t
        self.svc = svc
        self._progress = progress
        self.backup = f"{BACKUP_DIR}/{stamp}"
        self.applied = _Applied()
        self.haproxy_pid: int | None = None

    def say(self, message: str) -> None:
        self._progress(self.hp.host, message)

    def run(self) -> HostResult:
        hp = self.hp
        res = HostResult(hp.host, files={f.path: f.action.value for f in hp.files})
        t0 = time.monotonic()
        if not hp.changed:
            res.status = "unchanged"
            res.haproxy_pid = self.svc.main_pid("haproxy")
            res.services = {s.name: "none" for s in hp.services}
            self.say("unchanged")
            res.seconds = round(time.monotonic() - t0, 3)
            return res
        try:
            self._apply()
            res.status = "changed"
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
                res.status = "rolled-back"
                try:
                    self.rollback()
                except HalbError as re_:
                    res.status = "failed"
                    res.rollback_error = str(re_)
                    self.say(f"ROLLBACK FAILED: {re_}")
            else:
                res.status = "failed"
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
                self.say(f"starting {s.name}")
                self.applied.started.append(s.name)
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
        self.t.run(sh(_UPLOAD, *args), input=b"".join(blobs), timeout=60, check=True)

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
        moved = {f.path for f in self.applied.moved}
        if SYSCTL_CONF in moved and SYSCTL_CONF in restore:
            self.t.run(["sysctl", "-q", "-p", SYSCTL_CONF], timeout=30)
        for name in reversed(self.applied.started):
            self.svc.stop(name)
        for name in self.applied.reloaded:
            if (
                name in {"haproxy", "keepalived"}
                and (HAPROXY_CFG if name == "haproxy" else KEEPALIVED_CONF) in restore
            ):
                self.svc.reload(name)
        self.say("rolled back")


# --------------------------------------------------------------------------- the deploy


@dataclass
class DeployReport:
    plan: Plan
    hosts: list[HostResult]
    vips: dict[str, list[str]]
    vip_error: str | None
    dry_run: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts) and self.vip_error is None

    @property
    def changed(self) -> bool:
        return any(h.status == "changed" for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "changed": self.changed if not self.dry_run else self.plan.changed,
            "seconds": self.seconds,
            "plan": self.plan.as_dict(),
            "hosts": {
                h.host: {
                    "status": h.status,
                    "error": h.error,
                    "rollback_error": h.rollback_error,
                    "files": h.files,
                    "services": h.services,
                    "backup": h.backup,
                    "haproxy_pid": h.haproxy_pid,
                    "seconds": h.seconds,
                }
                for h in self.hosts
            },
            "vips": self.vips,
            "vip_error": self.vip_error,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for_vips(
    transports: Mapping[str, Transport],
    vips: Mapping[str, str],
    *,
    timeout: float,
    settle: float = 0.0,
    final: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[str]], str | None]:
    """Poll `ip -o addr` on every LB host until each VIP (name -> address) has exactly one
    holder.

    With `settle`, the same holders must be seen for that long (a peer that just started
    may still preempt), unless every VIP is already on its `final` host (the peer with the
    highest priority: nobody can take it over).
    """
    deadline = time.monotonic() + timeout
    stable_since: float | None = None
    last: dict[str, list[str]] | None = None

    def addrs(t: Transport) -> tuple[IfAddr, ...]:
        r = t.run(IP_ADDR, timeout=30)
        return parse_ip_addr(r.out) if r.ok else ()

    names = list(transports)
    with ThreadPoolExecutor(max_workers=max(1, len(transports))) as pool:
        while True:
            seen = dict(zip(names, pool.map(addrs, transports.values()), strict=True))
            holding = holders(seen, vips)
            now = time.monotonic()
            bad = {v: h for v, h in holding.items() if len(h) != 1}
            if (
                not bad
                and final is not None
                and all(holding[v] == [final[v]] for v in holding if v in final)
            ):
                return holding, None
            if bad or holding != last:
                stable_since = None if bad else now
            last = holding
            if stable_since is not None and now - stable_since >= settle:
                return holding, None
            if now > deadline:
                if not bad:
                    return holding, None  # one holder each, just not for the whole window
                why = "; ".join(
                    f"VIP {v} held by {' and '.join(h)} (split brain)"
                    if h
                    else f"VIP {v} has no holder"
                    for v, h in bad.items()
                )
                return holding, f"{why} after {timeout:g}s"
            time.sleep(0.25)


def _roll_back_changed(
    results: Sequence[HostResult], deployers: Mapping[str, HostDeployer], why: str
) -> None:
    for r in results:
        if r.status != "changed":
            continue
        r.error, r.status = why, "rolled-back"
        try:
            deployers[r.host].rollback()
        except HalbError as e:
            r.status, r.rollback_error = "failed", str(e)


def deploy(
    cluster: Any,
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    *,
    limit: Sequence[str] = (),
    dry_run: bool = False,
    install: bool = True,
    diff: Callable[[list[str]], None] | None = None,
    transport_for: TransportFactory = for_host,
    progress: Progress = _quiet,
    vip_timeout: float | None = None,
    lock: bool = True,
) -> DeployReport:
    """Plan, then (unless dry_run) apply to every LB host (or the `limit` ones) and verify."""
    t_start = time.monotonic()
    lbs: dict[str, Host] = {h.name: h for h in cluster.lb_hosts}
    unknown = [h for h in limit if h not in lbs]
    if unknown:
        raise InputError(
            f"--limit {', '.join(unknown)}: not an LB host (LB hosts: {', '.join(lbs)})"
        )
    targets = [h for h in lbs if not limit or h in limit]
    transports: dict[str, Transport] = {}
    managers: dict[str, ServiceManager] = {}
    local_lock = LocalLock(cluster.config_path) if lock and not dry_run else None
    locks: list[RemoteLock] = []
    try:
        if local_lock:
            local_lock.acquire()
        for name, host in lbs.items():
            transports[name] = transport_for(host)
            managers[name] = manager(cluster.service_manager(host), transports[name])

        def connect(name: str) -> TargetFacts:
            t = transports[name]
            if local_lock:
                rl = RemoteLock(t, f"{socket.gethostname()} pid {os.getpid()} since {_now()}")
                rl.acquire()
                locks.append(rl)
            facts = gather_facts(t, managers[name], rendered[name])
            progress(name, "connected")
            return facts

        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            facts = dict(zip(targets, pool.map(connect, targets), strict=True))
        plan = compute_plan(
            {h: rendered[h] for h in targets},
            facts,
            {h: managers[h].kind for h in targets},
            install=install,
        )
        missing = [(h.host, p) for h in plan.hosts for p in facts[h.host].missing if not install]
        if missing and not dry_run:
            raise DeployError(
                "; ".join(f"{h}: {p} is not installed" for h, p in missing)
                + " (--no-install was given)"
            )
        if diff is not None:
            old: dict[tuple[str, str], str] = {}
            for h in plan.hosts:
                for f in h.changed_files:
                    if f.action == Action.UPDATE:
                        old[(h.host, f.path)] = (
                            transports[h.host].get(f.path).decode("utf-8", "replace")
                        )
            diff(diff_lines(plan, old, [cluster.auth_password]))
        if dry_run:
            return DeployReport(plan, [], {}, None, True, round(time.monotonic() - t_start, 3))

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        deployers = {
            h.host: HostDeployer(h, transports[h.host], managers[h.host], progress, stamp)
            for h in plan.hosts
        }
        with ThreadPoolExecutor(max_workers=max(1, len(deployers))) as pool:
            results = list(pool.map(lambda d: d.run(), deployers.values()))

        vips = {v.name: v.address for v in cluster.vips}
        wait = vip_timeout if vip_timeout is not None else max(10.0, 4 * cluster.advert_int + 5)
        # a peer whose keepalived just started or reloaded may still take a VIP over
        moved = any(h.service("keepalived") != ServiceAction.NONE for h in plan.hosts)
        settle = 2 * cluster.advert_int + 1 if moved else 0.0
        failed = [r.host for r in results if not r.ok]
        if failed:
            # all or nothing: peers must not run different configs
            _roll_back_changed(results, deployers, f"rolled back: {', '.join(failed)} failed")
            holders, _ = wait_for_vips(transports, vips, timeout=0)
            vip_error = None
        else:
            top = {
                v.name: max(v.priorities, key=lambda h: v.priorities[h])
                for v in cluster.vips
                if v.priorities and not cluster.spec.vrrp.nopreempt
            }
            holders, vip_error = wait_for_vips(
                transports, vips, timeout=wait + settle, settle=settle, final=top
            )
            if vip_error:
                progress("-", f"VIP check failed: {vip_error}")
                _roll_back_changed(results, deployers, f"VIP check failed: {vip_error}")
            else:
                progress("-", "VIPs: " + ", ".join(f"{v}@{h[0]}" for v, h in holders.items()))
        return DeployReport(
            plan, results, holders, vip_error, False, round(time.monotonic() - t_start, 3)
        )
    finally:
        for rl in locks:
            rl.release()
        for t in transports.values():
            t.close()
        if local_lock:
            local_lock.release()
