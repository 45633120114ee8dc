"""Write halb's load balancer into an installer's config, then launch the installer.

Edits are pure (text in, text out); `write_config` is the one effect: backup, atomic
replace, same mode.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from halb.choices import INSTALLER_KINDS
from halb.errors import InputError
from halb.installers.detect import choose_kind, detect_kind
from halb.installers.domain import domain_warnings, endpoint_domain
from halb.installers.edit import EditResult, LBSettings
from halb.installers.endpoint import FrontendView, choose_apiserver_frontend
from halb.installers.kubekey_docs import edit_kubekey_config
from halb.installers.kubesphere import edit_common_yaml
from halb.installers.kubespray import edit_kubespray_vars
from halb.installers.limits import check_yaml_limits
from halb.installers.userfile import backup_file, read_config, replace_file, writable
from halb.roles import Role, role_hosts

if TYPE_CHECKING:
    from halb.spec import Cluster

__all__ = [
    "EDITORS",
    "KINDS",
    "EditResult",
    "LBSettings",
    "WriteResult",
    "apiserver_frontend",
    "edit",
    "installer_kind",
    "lb_settings",
    "write_config",
]

Editor = Callable[[str, LBSettings, str], EditResult]

EDITORS: dict[str, Editor] = {
    "kubesphere": edit_common_yaml,
    "kubekey": edit_kubekey_config,
    "kubespray": edit_kubespray_vars,
}
KINDS = INSTALLER_KINDS  # the CLI shows these without importing this package


def lb_settings(cluster: Cluster, kind: str | None = None) -> LBSettings:
    """The apiserver endpoint through halb's VIP, and every VIP for the SANs."""
    fe = apiserver_frontend(cluster)
    ins = cluster.spec.installer
    return LBSettings(
        address=fe.address,
        port=fe.port,
        domain=endpoint_domain(kind or ins.kind, ins, fe.address),
        extra_sans=tuple(cluster.vip_addresses),
    )


def installer_kind(cluster: Cluster, override: str | None) -> tuple[str | None, str | None]:
    """(kind, who chose it) for write_config; who is None when the file's content decides.

    `--installer` and an `installer.kind` written in halb.yaml are choices the file must
    agree with; the default kind gives way to what the file says; kind `command` leaves
    it to the file.
    """
    if override is not None:
        if override not in KINDS:
            raise InputError(f"--installer {override}: expected one of {', '.join(KINDS)}")
        return override, "--installer"
    ins = cluster.spec.installer
    if ins.kind not in KINDS:
        return None, None
    if "installer" in cluster.spec.model_fields_set and "kind" in ins.model_fields_set:
        return ins.kind, f"installer.kind in {cluster.config_path.name}"
    return ins.kind, None


def apiserver_frontend(cluster: Cluster) -> FrontendView:
    """The frontend that serves the apiserver (see endpoint.py), from the resolved cluster."""
    views = []
    for fe in cluster.frontends:
        spec = cluster.spec.frontends.get(fe.name)
        views.append(
            FrontendView(
                name=fe.name,
                vip_name=fe.vip_name,
                address=fe.address,
                port=fe.port,
                group=spec.backends if spec else "",
                backend_port=spec.backend_port if spec else 0,
                backend_hosts=frozenset(b.name for b in fe.backends),
            )
        )
    control_plane = {h.name for h in role_hosts(cluster.inventory, Role.CONTROL_PLANE)}
    return choose_apiserver_frontend(views, control_plane, f"{cluster.config_path}: frontends")


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changed: bool
    written: bool
    backup: Path | None = None
    diff: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    kind: str = ""  # the installer the file was edited as


def edit(kind: str, text: str, settings: LBSettings, source: str) -> EditResult:
    try:
        editor = EDITORS[kind]
    except KeyError:
        raise InputError(
            f"unknown installer {kind!r}; expected one of: {', '.join(KINDS)}"
        ) from None
    result = editor(text, settings, source)
    extra = domain_warnings(kind, settings.domain, settings.address, source)
    return EditResult(result.text, result.warnings + extra) if extra else result


def unified_diff(before: str, after: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (halb)",
        )
    )


def write_config(
    kind: str | None,
    path: Path,
    settings: LBSettings,
    *,
    said_by: str | None = "installer.kind",
    dry_run: bool = False,
    now: datetime | None = None,
) -> WriteResult:
    """Edit the installer config at `path`; back it up and replace it only if it changes.

    `kind` is the installer someone chose (`said_by` names where: "--installer"), or with
    `said_by` None a default that the file's content overrides. The file keeps its line
    endings, a missing final newline, a byte-order mark, its mode and its owner.
    """
    raw, before = read_config(path)
    try:
        target = path.resolve(strict=True)  # a symlinked config keeps its link
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path}: cannot follow its links: {e}") from None
    bom = "\ufeff" if before.startswith("\ufeff") else ""
    body = before[len(bom) :]
    check_yaml_limits(body, str(path))
    chosen = choose_kind(kind, said_by, detect_kind(body, path), path)
    result = edit(chosen, body, settings, str(path))
    after = bom + result.text
    if after == before:
        return WriteResult(
            path, changed=False, written=False, warnings=result.warnings, kind=chosen
        )
    diff = unified_diff(before, after, path)
    if dry_run:
        return WriteResult(
            path, changed=True, written=False, diff=diff, warnings=result.warnings, kind=chosen
        )
    st = writable(target, path)
    backup = backup_file(target, raw, st, now or datetime.now())
    try:
        replace_file(target, path, after, raw, st)
    except BaseException:
        backup.unlink(missing_ok=True)  # nothing changed, so no backup either
        raise
    return WriteResult(
        path,
        changed=True,
        written=True,
        backup=backup,
        diff=diff,
        warnings=result.warnings,
        kind=chosen,
    )
