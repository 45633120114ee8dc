"""Which installer a config belongs to, from what it holds; and which kind to edit it as.

A KubeKey cluster config, a KubeSphere 2.1 `conf/common.yaml` and a Kubespray
`group_vars` file want different keys. halb.yaml names one kind (or leaves the default);
the file's content says another only on strong signs: KubeKey's apiVersion, keys that only
KubeSphere's installer reads, keys or a folder only Kubespray uses. When a kind someone
chose and the content disagree, nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from halb.errors import InputError
from halb.installers.edit import UNREADABLE_VALUE

KUBEKEY_API = "kubekey.kubesphere.io/"
# Keys KubeSphere 2.1's installer reads from conf/common.yaml and plain Kubespray does not.
KUBESPHERE_KEYS = frozenset(
    {
        "ks_version",
        "ks_image_pull_policy",
        "jwt_admin_key",
        "console_port",
        "openpitrix_enabled",
        "devops_enabled",
        "servicemesh_enabled",
        "notification_enabled",
        "alerting_enabled",
        "sonarqube_enabled",
    }
)
# Keys of Kubespray's group_vars/all/all.yml that KubeSphere's common.yaml does not carry.
KUBESPRAY_KEYS = frozenset(
    {
        "bin_dir",
        "etcd_data_dir",
        "etcd_kubeadm_enabled",
        "loadbalancer_apiserver_localhost",
        "loadbalancer_apiserver_port",
        "loadbalancer_apiserver_healthcheck_port",
        "loadbalancer_apiserver_type",
        "upstream_dns_servers",
        "kube_read_only_port",
    }
)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Detected:
    kind: str
    because: str  # what in the file says so, for messages


def detect_kind(text: str, path: Path) -> Detected | None:
    """The installer the file's content (or its folder) names, or None when it is silent.

    Call it after the YAML limits passed: this is a plain safe load of a bounded file.
    """
    try:
        data = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError, *UNREADABLE_VALUE):
        return None  # the round-trip parser reports the error (`!!int ` raises IndexError)
    if not isinstance(data, Mapping):
        return None
    return detect_from_data(data, path)


def detect_from_data(data: Mapping[Any, Any], path: Path) -> Detected | None:
    api = data.get("apiVersion")
    kind = data.get("kind")
    if isinstance(api, str) and api.startswith(KUBEKEY_API):
        return Detected("kubekey", f"apiVersion is {api[:60]}")
    if isinstance(api, str) and isinstance(kind, str):
        raise InputError(
            f"{path}: a Kubernetes object (apiVersion {api[:60]}, kind {kind[:60]}), not an "
            "installer config halb edits (a KubeKey Cluster, KubeSphere's conf/common.yaml or "
            "Kubespray's group_vars/all/all.yml)"
        )
    keys = {k for k in data if isinstance(k, str)}
    ks = sorted(keys & KUBESPHERE_KEYS)
    if ks:
        return Detected("kubesphere", f"it sets {', '.join(ks[:3])}")
    spray = sorted(keys & KUBESPRAY_KEYS)
    if spray:
        return Detected("kubespray", f"it sets {', '.join(spray[:3])}")
    if "group_vars" in path.parts[:-1]:
        return Detected("kubespray", "it sits in a group_vars folder")
    return None


def choose_kind(kind: str | None, said_by: str | None, found: Detected | None, path: Path) -> str:
    """The kind to edit `path` as.

    `kind` with `said_by` (e.g. "--installer") is a choice someone made: the content must
    agree. `said_by` None makes `kind` a default the content may override.
    """
    if said_by is not None and kind is not None:
        if found is not None and found.kind != kind:
            raise InputError(
                f"{path}: reads as a {found.kind} config ({found.because}), but {said_by} "
                f"says {kind}; fix one of them"
            )
        return kind
    if found is not None:
        return found.kind
    if kind is None:
        raise InputError(
            f"{path}: cannot tell which installer this config is for; pass --installer "
            "(kubesphere, kubekey or kubespray)"
        )
    return kind
