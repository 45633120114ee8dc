"""The deploy plan, pure: what the hosts have now (sha256 and mode of each target file,
which services run, which packages are missing, live sysctl values) against what was
rendered gives small frozen records; `--dry-run` and `--diff` print them."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from halb.daemons import SERVICES, ServiceName
from halb.facts.target import TargetFacts
from halb.paths import (
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    SYSCTL_CONF,
    SYSTEMD_DIR,
    VRRP_NFT,
    dropin_dir,
)
from halb.render import RenderedFile
from halb.shell import MASK, scrub

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
        if self.path.endswith(".nft"):
            return "nft"
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
    # load halb's VRRP filter: its file changed, or its table is not loaded (a reboot)
    load_filter: bool = False

    @property
    def changed_files(self) -> tuple[FileStep, ...]:
        return tuple(f for f in self.files if f.changed)

    @property
    def changed(self) -> bool:
        return bool(self.changed_files or self.install or self.sysctl or self.load_filter) or any(
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
                "vrrp_filter": h.load_filter,
                "install": list(h.install),
                "changed": h.changed,
            }
            for h in self.hosts
        }


# --------------------------------------------------------------------------- pure plan

# scripts first: keepalived.conf names them and its check needs them in place
_ORDER = {"script": 0, "none": 1, "nft": 1, "haproxy": 2, "keepalived": 3}


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
        load_filter=VRRP_NFT in files and (VRRP_NFT in changed or not facts.vrrp_filter_loaded),
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
        if h.load_filter:
            lines.append(f"  load      {VRRP_NFT}")
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
