"""Which installer an inventory belongs to: from the files beside it, then its group names.

- KubeSphere 2.1 (ks-installer): `conf/hosts.ini` with `conf/common.yaml` beside it.
- Kubespray: a `group_vars/` folder beside the inventory (`group_vars/all/all.yml`, or
  `group_vars/all.yml` before 2.7); else Kubespray 2.16+ group names (`kube_control_plane`).
- KubeKey: a YAML file beside the inventory whose apiVersion is `kubekey.kubesphere.io/...`
  (`kind: Cluster` for KubeKey 1.x-3.x, `kind: Config` for v4).
- kubeasz: `config.yml` beside a `hosts` file (3.x), or its group names (`kube_master`,
  `ex_lb`/`ex-lb`, `deploy`, `chrony`).

Reading is bounded (a few small files, each through `read_input`); the rest is pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from halb.errors import InputError
from halb.files import read_input
from halb.inventory import Inventory

KUBEKEY_API = "kubekey.kubesphere.io/"
_MAX_CANDIDATES = 32  # YAML files looked at beside an inventory
_KUBEKEY_PEEK = 64 * 1024  # the first document's head is enough to see apiVersion and kind

_KUBEASZ_GROUPS = frozenset({"kube_master", "ex_lb", "ex-lb", "deploy", "chrony"})


@dataclass(frozen=True)
class Installation:
    kind: str  # kubesphere | kubekey | kubespray | kubeasz | unknown
    label: str  # what the user reads: "Kubespray 2.16+", "KubeKey v4", ...
    config: Path | None  # the installer config halb edits, if any
    console: bool  # the install has the KubeSphere console (NodePort 30880)
    cluster: str  # a cluster name from the folder layout
    reason: str  # why halb thinks so, for the note init prints


Reader = Callable[[Path], str | None]


def read_small(path: Path) -> str | None:
    """The head of a regular file as text, or None when it cannot be read as such."""
    try:
        raw = read_input(path, "file", limit=4 * 1024 * 1024)
    except InputError:
        return None
    return raw[:_KUBEKEY_PEEK].decode("utf-8", "replace")


def detect(inventory: Inventory, read: Reader = read_small) -> Installation:
    """The installer for `inventory`, from its folder first, then its group names."""
    inv_path = inventory.source.resolve()
    folder = inv_path.parent
    groups = set(inventory.groups)
    name = _cluster_name(folder)

    common = folder / "common.yaml"
    if folder.name == "conf" and common.is_file():
        return Installation(
            "kubesphere", "KubeSphere 2.1 (ks-installer)", common, True, name,
            f"{common.name} beside the inventory in conf/",
        )  # fmt: skip

    kk = _kubekey_config(folder, inv_path, read)
    if kk is not None:
        path, kind, with_ks = kk
        label = "KubeKey v4" if kind == "Config" else "KubeKey 1.x-3.x"
        return Installation(
            "kubekey", label, path, with_ks, name, f"{path.name} beside the inventory"
        )

    gv = folder / "group_vars"
    if gv.is_dir() and not groups & _KUBEASZ_GROUPS:
        config = gv / "all" / "all.yml"
        if not config.is_file() and (gv / "all.yml").is_file():
            config = gv / "all.yml"
        return Installation(
            "kubespray", _kubespray_label(groups), config, False, name,
            "a group_vars/ folder beside the inventory",
        )  # fmt: skip

    if groups & _KUBEASZ_GROUPS or ((folder / "config.yml").is_file() and "kube_node" in groups):
        label = "kubeasz 3.x" if "kube_master" in groups else "kubeasz 1.x-2.x"
        return Installation("kubeasz", label, None, False, name, "kubeasz group names")

    if groups & {"kube_control_plane", "k8s_cluster", "kube_node"}:
        return Installation(
            "kubespray", _kubespray_label(groups), folder / "group_vars" / "all" / "all.yml",
            False, name, "Kubespray 2.16+ group names",
        )  # fmt: skip

    if folder.name == "conf":
        return Installation(
            "kubesphere", "KubeSphere 2.1 (ks-installer)", common, True, name,
            "an inventory in conf/ with KubeSphere group names",
        )  # fmt: skip
    return Installation(
        "kubesphere", "KubeSphere 2.1 (ks-installer)", folder / "common.yaml", True, name,
        "no installer files beside the inventory; KubeSphere 2.1 group names assumed",
    )  # fmt: skip


def _kubespray_label(groups: set[str]) -> str:
    if "kube_control_plane" in groups:
        return "Kubespray 2.16+"
    return "Kubespray (before 2.16)"


def _cluster_name(folder: Path) -> str:
    """The folder's name, or its parent's for the installers' generic folder names."""
    for d in (folder, *folder.parents):
        if d.name and d.name not in ("conf", "inventory", "ansible", "etc", "clusters"):
            return d.name
    return "k8s-ha"


_API = re.compile(r"^apiVersion:\s*[\"']?(kubekey\.kubesphere\.io/\S+?)[\"']?\s*(#.*)?$", re.M)
_KIND = re.compile(r"^kind:\s*[\"']?(\w+)[\"']?\s*(#.*)?$", re.M)


def kubekey_kind(text: str) -> str | None:
    """'Cluster' or 'Config' when `text` is a KubeKey config (from its top-level keys)."""
    for doc in re.split(r"^---.*$", text, flags=re.M):
        m = _KIND.search(doc)
        if _API.search(doc) and m and m.group(1) in ("Cluster", "Config"):
            return m.group(1)
    return None


def _kubekey_config(folder: Path, inv_path: Path, read: Reader) -> tuple[Path, str, bool] | None:
    try:
        names = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError:  # an unreadable folder says nothing about the installer
        return None
    candidates = [p for p in names if p != inv_path][:_MAX_CANDIDATES]
    for p in candidates:
        text = read(p)
        if text is None:
            continue
        kind = kubekey_kind(text)
        if kind is not None:
            with_ks = "kind: ClusterConfiguration" in text and "installer.kubesphere.io" in text
            return p, kind, with_ks
    return None
