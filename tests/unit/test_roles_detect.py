"""Roles over group names, installer detection, and the validate hints that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from halb.detect import detect, kubekey_kind
from halb.inventory import Inventory, parse_ini
from halb.roles import Role, backend_group, role_group, role_hosts
from halb.spec import Spec, resolve


def inv(text: str, path: Path = Path("/nowhere/hosts.ini")) -> Inventory:
    return parse_ini(text, path)


KUBESPRAY_MASTER = """\
[kube_control_plane]
c1 ansible_host=10.1.0.1
c2 ansible_host=10.1.0.2
[etcd:children]
kube_control_plane
[kube_node]
w1 ansible_host=10.1.0.11
"""


@pytest.mark.parametrize(
    "text,cp,workers,cluster",
    [
        (KUBESPRAY_MASTER, "kube_control_plane", "kube_node", None),
        ("[kube-master]\nm\n[kube-node]\nn\n[k8s-cluster:children]\nkube-master\nkube-node\n",
         "kube-master", "kube-node", "k8s-cluster"),
        ("[kube_master]\n10.0.0.1\n[kube_node]\n10.0.0.2\n", "kube_master", "kube_node", None),
        ("[control-plane]\na\n[worker]\nb\n", "control-plane", "worker", None),
        ("[master]\na\n[worker]\nb\n", "master", "worker", None),
    ],
)  # fmt: skip
def test_role_groups_follow_the_inventory(
    text: str, cp: str, workers: str, cluster: str | None
) -> None:
    i = inv(text)
    assert role_group(i, Role.CONTROL_PLANE) == cp
    assert role_group(i, Role.WORKERS) == workers
    assert role_group(i, Role.CLUSTER) == cluster
    # No cluster group: the cluster is control plane + workers, in inventory order.
    every = [h.name for h in i.hosts.values()]
    assert [h.name for h in role_hosts(i, Role.CLUSTER)] == every
    assert backend_group(i, Role.CLUSTER) == (cluster or workers)


def test_empty_group_of_a_role_gives_way_to_one_with_hosts() -> None:
    i = inv("[lb]\n[ex_lb]\nx ansible_host=10.0.0.9\n[kube_control_plane]\nc\n")
    assert role_group(i, Role.LB) == "ex_lb"
    assert role_hosts(i, Role.ETCD) == []


def test_ip_named_host_has_its_name_as_address() -> None:
    i = inv("[kube_master]\n192.168.1.1 k8s_nodename='m1'\nm2\n")
    assert i.hosts["192.168.1.1"].ip == "192.168.1.1"
    assert i.hosts["m2"].ip is None  # a name is not an address halb may guess


def _spec(backends: str, lb_hosts: list[str] | None = None) -> Spec:
    return Spec.model_validate(
        {
            "cluster": "t",
            "inventory": "hosts.ini",
            "lb_hosts": lb_hosts,
            "vips": {"internal": {"address": "10.1.0.100", "interface": "eth0"}},
            "frontends": {"apiserver": {"port": 8443, "backends": backends, "backend_port": 6443}},
        }
    )


def test_validate_hint_names_the_group_of_the_same_role() -> None:
    _, findings = resolve(_spec("kube-master"), Path("/x/halb.yaml"), inv(KUBESPRAY_MASTER))
    msgs = [str(f) for f in findings if f.level == "error"]
    assert any(
        "group 'kube-master' is not in hosts.ini; did you mean 'kube_control_plane'" in m
        for m in msgs
    ), msgs
    _, findings = resolve(_spec("k8s-cluster"), Path("/x/halb.yaml"), inv(KUBESPRAY_MASTER))
    assert any("no cluster group: did you mean 'kube_node'" in str(f) for f in findings)


def test_master_count_warning_uses_the_control_plane_role() -> None:
    cluster, findings = resolve(
        _spec("kube_control_plane"), Path("/x/halb.yaml"), inv(KUBESPRAY_MASTER)
    )
    assert cluster is not None, findings
    assert cluster.lb_host_names == ("c1", "c2")  # no LB group: the control plane
    assert any(
        f.where == "hosts.ini: group kube_control_plane" and "2 master(s)" in f.message
        for f in findings
    )


# --------------------------------------------------------------------------- detection


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.mark.parametrize(
    "files,inventory,kind,label,config,console",
    [
        ({"ks/conf/hosts.ini": "[kube-master]\nm\n", "ks/conf/common.yaml": "a: 1\n"},
         "ks/conf/hosts.ini", "kubesphere", "KubeSphere 2.1 (ks-installer)", "ks/conf/common.yaml",
         True),
        ({"inv/c/hosts.ini": "[kube-master]\nm\n", "inv/c/group_vars/all/all.yml": "a: 1\n"},
         "inv/c/hosts.ini", "kubespray", "Kubespray (before 2.16)", "inv/c/group_vars/all/all.yml",
         False),
        ({"inv/c/hosts.ini": "[kube-master]\nm\n", "inv/c/group_vars/all.yml": "a: 1\n"},
         "inv/c/hosts.ini", "kubespray", "Kubespray (before 2.16)", "inv/c/group_vars/all.yml",
         False),
        ({"c/hosts.ini": KUBESPRAY_MASTER}, "c/hosts.ini", "kubespray", "Kubespray 2.16+",
         "c/group_vars/all/all.yml", False),
        ({"k/hosts": "[kube_master]\n10.0.0.1\n[kube_node]\n10.0.0.2\n", "k/config.yml": "A: 1\n"},
         "k/hosts", "kubeasz", "kubeasz 3.x", None, False),
        ({"k/hosts.ini": "[master]\nm\n",
          "k/config-sample.yaml": "apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\n"
          "---\napiVersion: installer.kubesphere.io/v1alpha1\nkind: ClusterConfiguration\n"},
         "k/hosts.ini", "kubekey", "KubeKey 1.x-3.x", "k/config-sample.yaml", True),
        ({"k/hosts.ini": "[kube_control_plane]\nm\n",
          "k/a.yaml": "apiVersion: kubekey.kubesphere.io/v1\nkind: Inventory\n",
          "k/b.yaml": "# v4\napiVersion: kubekey.kubesphere.io/v1\nkind: Config\n"},
         "k/hosts.ini", "kubekey", "KubeKey v4", "k/b.yaml", False),
    ],
)  # fmt: skip
def test_detect(
    tmp_path: Path,
    files: dict[str, str],
    inventory: str,
    kind: str,
    label: str,
    config: str | None,
    console: bool,
) -> None:
    _write(tmp_path, files)
    path = tmp_path / inventory
    found = detect(parse_ini(path.read_text(), path))
    assert (found.kind, found.label, found.console) == (kind, label, console)
    assert found.config == (tmp_path / config if config else None)


def test_detect_names_the_cluster_after_the_installer_folder(tmp_path: Path) -> None:
    _write(tmp_path, {"kubesphere-all-v2.1.1/conf/hosts.ini": "[kube-master]\nm\n"})
    path = tmp_path / "kubesphere-all-v2.1.1/conf/hosts.ini"
    assert detect(parse_ini(path.read_text(), path)).cluster == "kubesphere-all-v2.1.1"


def test_detect_skips_unreadable_neighbours(tmp_path: Path) -> None:
    _write(tmp_path, {"k/hosts.ini": "[kube-master]\nm\n"})
    (tmp_path / "k" / "fifo.yaml").symlink_to("/dev/zero")
    path = tmp_path / "k/hosts.ini"
    assert detect(parse_ini(path.read_text(), path)).kind == "kubesphere"


@pytest.mark.parametrize(
    "text,kind",
    [
        ("apiVersion: kubekey.kubesphere.io/v1alpha1\nkind: Cluster\n", "Cluster"),
        ("---\napiVersion: 'kubekey.kubesphere.io/v1'\nkind: Config # v4\n", "Config"),
        ("apiVersion: kubekey.kubesphere.io/v1\nkind: Inventory\n", None),
        ("apiVersion: v1\nkind: Cluster\n", None),
        ("kind: Cluster\n", None),
    ],
)
def test_kubekey_kind(text: str, kind: str | None) -> None:
    assert kubekey_kind(text) == kind


def test_init_refuses_an_lb_host_without_address(tmp_path: Path) -> None:
    from halb.errors import InputError
    from halb.starter_plan import plan_starter

    path = tmp_path / "hosts.ini"
    path.write_text("[kube_control_plane]\nc1 ansible_host=10.1.0.1\n[lb]\nedge\n")
    with pytest.raises(InputError, match="LB host 'edge' has no address"):
        plan_starter(parse_ini(path.read_text(), path), tmp_path)
