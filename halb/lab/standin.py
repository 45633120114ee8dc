"""The lab's stand-in installer: KubeSphere 2.1's scripts/ folder, laid into the lab.

halb launches it exactly as it launches the real one (`cd scripts && ./install.sh
multi-node`), so the lab runs the install stage for real: prompts, working directory,
exit 0 after a failure, the Welcome banner.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

STANDIN = "kubesphere-2.1"


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
