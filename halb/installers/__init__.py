"""Write halb's load balancer into an installer's config, then launch the installer.

Edits are pure (text in, text out); `write_config` is the one effect: backup, atomic
replace, same mode.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from halb.errors import InputError
from halb.installers.edit import EditResult, LBSettings
from halb.installers.endpoint import domain_warnings, endpoint_domain
from halb.installers.kubekey_docs import edit_kubekey_config
from halb.installers.kubesphere import edit_common_yaml
from halb.installers.kubespray import edit_kubespray_vars

if TYPE_CHECKING:
    from halb.spec import Cluster

__all__ = [
    "EDITORS",
    "KINDS",
    "EditResult",
    "LBSettings",
    "WriteResult",
    "edit",
    "lb_settings",
    "write_config",
]

Editor = Callable[[str, LBSettings, str], EditResult]

EDITORS: dict[str, Editor] = {
    "kubesphere": edit_common_yaml,
    "kubekey": edit_kubekey_config,
    "kubespray": edit_kubespray_vars,
}
KINDS = tuple(EDITORS)


def lb_settings(cluster: Cluster, kind: str | None = None) -> LBSettings:
    """The apiserver endpoint through halb's internal VIP, and every VIP for the SANs."""
    address, port = cluster.apiserver_endpoint
    ins = cluster.spec.installer
    return LBSettings(
        address=address,
        port=port,
        domain=endpoint_domain(kind or ins.kind, ins, address),
        extra_sans=tuple(cluster.vip_addresses),
    )


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changed: bool
    written: bool
    backup: Path | None = None
    diff: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)


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
    kind: str,
    path: Path,
    settings: LBSettings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> WriteResult:
    """Edit the installer config at `path`; back it up and replace it only if it changes."""
    try:
        before = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (installer config)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    result = edit(kind, before, settings, str(path))
    if result.text == before:
        return WriteResult(path, changed=False, written=False, warnings=result.warnings)
    diff = unified_diff(before, result.text, path)
    if dry_run:
        return WriteResult(path, changed=True, written=False, diff=diff, warnings=result.warnings)
    target = path.resolve()  # a symlinked config keeps its link
    backup = _backup(target, now or datetime.now())
    _atomic_write(target, result.text)
    return WriteResult(
        path, changed=True, written=True, backup=backup, diff=diff, warnings=result.warnings
    )


def _backup(target: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%d%H%M%S")
    backup = target.with_name(f"{target.name}.halb-bak-{stamp}")
    n = 1
    while backup.exists():  # two writes in one second keep both backups
        backup = target.with_name(f"{target.name}.halb-bak-{stamp}.{n}")
        n += 1
    try:
        shutil.copy2(target, backup)  # content, mode and mtime
    except OSError as e:
        raise InputError(f"{target}: cannot write backup {backup.name}: {e}") from None
    return backup


def _atomic_write(target: Path, text: str) -> None:
    st = target.stat()
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.halb-")
    except OSError as e:
        raise InputError(f"{target}: cannot write in {target.parent}: {e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"{target}: cannot replace: {e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
