"""Where and how each installer is launched: the way its own docs launch it.

Pure apart from looking at the installer's files (does the script exist, which KubeKey
version the config is). The facts behind each choice are in halb/installers/facts.py.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from halb.errors import InputError
from halb.installers.facts import COMMAND, InstallerFacts, facts_for
from halb.installers.userfile import read_config

# KubeKey v4's config document (kubekey_docs.V4_API); v1alpha1/2 are 1.x-3.x.
_V4 = re.compile(r"^apiVersion:\s*[\"']?kubekey\.kubesphere\.io/v1[\"']?\s*$", re.M)


@dataclass(frozen=True)
class LaunchPlan:
    argv: tuple[str, ...]
    cwd: Path
    facts: InstallerFacts = COMMAND

    def describe(self) -> str:
        return f"(cd {shlex.quote(str(self.cwd))} && {shlex.join(self.argv)})"


def plan_launch(
    kind: str,
    base_dir: Path,
    config: Path | None,
    command: str | None,
) -> LaunchPlan:
    """Which command to run where. A `command` from halb.yaml wins over the kind's default.

    `config` is the installer config (relative to base_dir, the halb.yaml folder). A
    command for a known kind still runs that installer: it gets the kind's prompts and
    markers, and runs in the halb.yaml folder.
    """
    cfg = (base_dir / config) if config is not None else None
    if command:
        v4 = kind == "kubekey" and cfg is not None and _is_kubekey_v4(cfg)
        return LaunchPlan(("bash", "-c", command), base_dir, facts_for(kind, kubekey_v4=v4))
    if kind == "kubesphere":
        # conf/common.yaml -> the installer folder holds conf/ and scripts/. install.sh
        # uses paths relative to scripts/ (os/install.tmp, os/precheck.py): run it there,
        # with `multi-node`, which skips the menu.
        root = cfg.parent.parent if cfg is not None else base_dir
        script = root / "scripts" / "install.sh"
        if not script.is_file():
            raise InputError(f"{script}: no such file (KubeSphere installer script)")
        return LaunchPlan(
            ("bash", "./install.sh", "multi-node"), root / "scripts", facts_for("kubesphere")
        )
    if kind == "kubekey":
        if cfg is None:
            raise InputError("installer.config: KubeKey needs its cluster config file")
        where = cfg.parent
        local = where / "kk"
        kk = "./kk" if local.is_file() and os.access(local, os.X_OK) else "kk"
        if _is_kubekey_v4(cfg):
            inventory = where / "inventory.yaml"
            if not inventory.is_file():
                raise InputError(
                    f"{inventory}: no such file (KubeKey v4 installs on the local machine "
                    "only without its inventory)"
                )
            argv: tuple[str, ...] = (kk, "create", "cluster", "-i", inventory.name, "-c", cfg.name)
            return LaunchPlan(argv, where, facts_for("kubekey", kubekey_v4=True))
        # --yes: 1.x skips the pre-check and its question, 2.x-3.x the confirmation.
        argv = (kk, "create", "cluster", "-f", cfg.name, "--yes")
        return LaunchPlan(argv, where, facts_for("kubekey"))
    if kind == "kubespray":
        if cfg is None:
            raise InputError("installer.config: Kubespray needs group_vars/all/all.yml")
        root, inventory = _kubespray_layout(cfg)
        argv = ("ansible-playbook", "-i", os.path.relpath(inventory, root), "cluster.yml", "-b")
        return LaunchPlan(argv, root, facts_for("kubespray"))
    if kind == "command":
        raise InputError("installer.command: installer kind 'command' needs a command")
    raise InputError(f"installer.kind: unknown installer {kind!r}")


def _is_kubekey_v4(cfg: Path) -> bool:
    try:
        _, text = read_config(cfg)
    except InputError:
        return False  # write-config, which runs first, names what is wrong with it
    return bool(_V4.search(text))


def _kubespray_layout(cfg: Path) -> tuple[Path, Path]:
    """(kubespray checkout holding cluster.yml, inventory file next to group_vars/)."""
    inv_dir = next((p.parent for p in cfg.parents if p.name == "group_vars"), None)
    if inv_dir is None:
        raise InputError(f"{cfg}: not under a group_vars/ folder of a Kubespray inventory")
    names = ("hosts.yaml", "hosts.yml", "hosts.ini", "inventory.ini")
    inventory = next((inv_dir / n for n in names if (inv_dir / n).is_file()), None)
    if inventory is None:
        raise InputError(f"{inv_dir}: no inventory file ({', '.join(names)})")
    root = next((p for p in inv_dir.parents if (p / "cluster.yml").is_file()), None)
    if root is None:
        raise InputError(f"{inv_dir}: no Kubespray cluster.yml in any parent folder")
    return root, inventory
