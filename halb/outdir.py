"""Writing rendered files under an output folder: confined, and all or nothing.

The tree is built in a fresh folder beside the target (mkdtemp: exclusive, private) and
renamed into place once every file is written, so a render that fails half-way (disk
full, a name refused) leaves the previous tree or none, never a partial tree that looks
complete; a completion marker alone would still leave the partial files for someone to
copy. The target is replaced only when it is empty or a previous render (it carries
MARKER), so `-o` pointed at a folder of other files cannot erase them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from halb.errors import InputError, SpecError
from halb.files import atomic_write
from halb.kinds import shown
from halb.render import HostFiles

MARKER = ".halb-render"


def confined(root: Path, host: str, target: str) -> Path:
    """root/host/target, or an error when that would leave root (whatever host is)."""
    rel = Path(host) / target.lstrip("/")
    p = Path(os.path.normpath(root / rel))
    one_folder = host not in ("", ".", "..") and "/" not in host and "\0" not in host
    if not one_folder or ".." in rel.parts or not p.is_relative_to(root / host):
        raise SpecError(f"host {shown(host)}: output path {shown(str(rel))} leaves the folder")
    return p


def _check_target(outdir: Path) -> None:
    if outdir.is_symlink():
        raise InputError(f"{outdir}: is a symbolic link; give -o a plain folder")
    if not outdir.exists():
        return
    if not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a folder; give -o a folder")
    if not (outdir / MARKER).is_file() and not _older_render(outdir) and any(outdir.iterdir()):
        raise InputError(
            f"{outdir}: folder holds files halb render did not write; give -o a new or empty folder"
        )


def _older_render(outdir: Path) -> bool:
    """A tree rendered before the marker existed: host folders holding halb's haproxy.cfg."""
    entries = list(outdir.iterdir())
    for e in entries:
        cfg = e / "etc/haproxy/haproxy.cfg"
        if e.is_symlink() or not e.is_dir() or cfg.is_symlink() or not cfg.is_file():
            return False
        with cfg.open("rb") as f:
            if b"Managed by halb" not in f.readline(200):
                return False
    return bool(entries)


def write_rendered(rendered: Mapping[str, HostFiles], outdir: Path) -> list[Path]:
    """Write outdir/HOST/<target path> for every file; returns the final paths."""
    outdir = Path(os.path.abspath(outdir))
    _check_target(outdir)
    try:
        outdir.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".new", dir=outdir.parent))
    except OSError as e:
        raise InputError(f"{outdir}: cannot write there: {e.strerror or e}") from None
    written: list[Path] = []
    try:
        for host, files in rendered.items():
            for target, f in files.items():
                p = confined(stage, host, target)
                p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                atomic_write(p, f.content, f.mode)
                written.append(outdir / p.relative_to(stage))
        atomic_write(stage / MARKER, "written by halb render; replaced by the next one\n", 0o644)
        os.chmod(stage, 0o755)
        _swap(stage, outdir)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise InputError(f"{outdir}: cannot write: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return written


def _swap(stage: Path, outdir: Path) -> None:
    """Put stage at outdir; an old tree is moved aside first and removed after."""
    if not outdir.exists():
        os.rename(stage, outdir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".old", dir=outdir.parent))
    os.rename(outdir, old)  # onto an empty folder: replaces it
    try:
        os.rename(stage, outdir)
    except OSError:
        with contextlib.suppress(OSError):
            os.rename(old, outdir)
        raise
    shutil.rmtree(old, ignore_errors=True)
