"""The lab's stand-in installer: KubeSphere 2.1's scripts/ folder, laid into the lab.

halb launches it exactly as it launches the real one (`cd scripts && ./install.sh
multi-node`), so the lab runs the install stage for real: prompts, working directory,
exit 0 after a failure, the Welcome banner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

STANDIN = "kubesphere-2.1"
SCRIPTS = "scripts"
INVENTORY_LINK = Path("conf") / "hosts.ini"  # where install.sh reads the inventory
KNOBS = ("lab-offline", "lab-fail-stage", "lab-extra-prompt", "lab-ks-wait", "lab-no-banner")


def _copy(src: Traversable, dest: Path) -> None:
    if src.is_dir():
        dest.mkdir(mode=0o755, exist_ok=True)
        for child in src.iterdir():
            if child.name != "__pycache__":
                _copy(child, dest / child.name)
        return
    dest.write_bytes(src.read_bytes())
    executable = src.name.endswith(".sh")
    os.chmod(dest, 0o755 if executable else 0o644)


def lay_kubesphere_installer(root: Path) -> Path:
    """Write scripts/ of the KubeSphere 2.1 stand-in under `root` (which holds conf/)."""
    src = resources.files("halb.lab").joinpath("standins", STANDIN, "scripts")
    _copy(src, root / "scripts")
    return root / "scripts" / "install.sh"


def lay_lab_installer(lab_dir: Path, *, offline: bool = False) -> None:
    """The stand-in under `lab_dir` (which holds conf/common.yaml and hosts.ini).

    `offline`: its stages contact nothing (a lab whose VIPs this machine cannot reach).
    """
    lay_kubesphere_installer(lab_dir)
    link = lab_dir / INVENTORY_LINK
    if not link.is_symlink() and not link.exists():
        link.symlink_to(Path("..") / "hosts.ini")
    if offline:
        (lab_dir / "lab-offline").write_text("stages 2 and 3 contact nothing\n")


def remove_lab_installer(lab_dir: Path) -> None:
    """What lay_lab_installer wrote, and the knobs a test left; nothing else."""
    scripts = lab_dir / SCRIPTS
    if (scripts / "lab" / "playbook.sh").is_file() and not scripts.is_symlink():
        shutil.rmtree(scripts, ignore_errors=True)
    shutil.rmtree(lab_dir / "logs", ignore_errors=True)  # install.sh's own log folder
    link = lab_dir / INVENTORY_LINK
    if link.is_symlink():
        link.unlink()
    for knob in KNOBS:
        with contextlib.suppress(FileNotFoundError):
            (lab_dir / knob).unlink()
