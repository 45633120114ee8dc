"""Which installer a file is for, and which frontend's VIP and port the installer is told."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.cli import app
from halb.errors import InputError
from halb.installers.detect import Detected, choose_kind, detect_kind
from halb.installers.endpoint import FrontendView, choose_apiserver_frontend

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
runner = CliRunner()
P = Path("c.yaml")


# --- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("kubekey-cluster.yaml", "kubekey"),
        ("kubesphere-common.yaml", "kubesphere"),
        ("kubespray-all.yml", "kubespray"),
    ],
)
def test_fixtures_are_detected_by_content(name: str, kind: str) -> None:
    found = detect_kind((FIXTURES / name).read_text(), Path(name))
    assert found is not None and found.kind == kind


def test_detection_signs() -> None:
    assert detect_kind("some_var: 1\n", P) is None
    assert detect_kind("- a list\n", P) is None
    assert detect_kind("a: [unclosed\n", P) is None
    found = detect_kind("a: 1\n", Path("inventory/mycluster/group_vars/all/all.yml"))
    assert found == Detected("kubespray", "it sits in a group_vars folder")
    # KubeSphere's keys win: its common.yaml feeds Kubespray's variables too.
    found = detect_kind("bin_dir: /usr/local/bin\nks_version: v2.1.1\n", P)
    assert found is not None and found.kind == "kubesphere"
    with pytest.raises(InputError, match=r"c\.yaml: a Kubernetes object .*ClusterConfiguration"):
        detect_kind("apiVersion: installer.kubesphere.io/v1alpha1\nkind: ClusterConfiguration\n", P)


def test_choose_kind() -> None:
    kk = Detected("kubekey", "apiVersion is kubekey.kubesphere.io/v1alpha2")
    assert choose_kind("kubesphere", None, kk, P) == "kubekey"  # a default gives way
    assert choose_kind("kubekey", "--installer", kk, P) == "kubekey"
    assert choose_kind("kubespray", "--installer", None, P) == "kubespray"
    assert choose_kind("kubesphere", None, None, P) == "kubesphere"
    with pytest.raises(
        InputError, match=r"c.yaml: reads as a kubekey .* --installer says kubespray"
    ):
        choose_kind("kubespray", "--installer", kk, P)
    with pytest.raises(InputError, match="pass --installer"):
        choose_kind(None, None, None, P)


# --- the apiserver frontend ---------------------------------------------------------------

MASTERS = frozenset({"master1", "master2"})


def fe(
    name: str,
    port: int,
    group: str = "kube-master",
    backend_port: int = 6443,
    vip: str = "internal",
    hosts: frozenset[str] = MASTERS,
) -> FrontendView:
    address = "10.0.0.253" if vip == "internal" else "10.0.0.254"
    return FrontendView(name, vip, address, port, group, backend_port, hosts)


def choose(*frontends: FrontendView) -> FrontendView:
    return choose_apiserver_frontend(frontends, MASTERS, "halb.yaml: frontends")


def test_the_frontend_is_chosen_by_its_backends_not_its_name() -> None:
    console = fe("console", 30880, "k8s-cluster", 30880, "external", MASTERS | {"node1"})
    assert choose(fe("k8s-api", 8443), console).name == "k8s-api"
    # Another group that holds exactly the control-plane hosts counts too.
    assert choose(fe("api", 8443, group="apiservers"), console).port == 8443
    assert choose(fe("api", 8443, group="kube_control_plane", hosts=frozenset())).port == 8443


def test_ties_go_to_the_internal_vip_then_to_the_name_apiserver() -> None:
    assert choose(fe("ext", 6443, vip="external"), fe("int", 8443)).name == "int"
    assert choose(fe("apiserver", 6443), fe("api2", 8443)).name == "apiserver"


def test_competing_frontends_are_named() -> None:
    with pytest.raises(InputError, match=r"frontends a \(10.0.0.253:6443\), b \(10.0.0.253:8443\)"):
        choose(fe("a", 6443), fe("b", 8443))


def test_no_apiserver_frontend() -> None:
    other = fe("web", 80, group="web", backend_port=80, hosts=frozenset({"node1"}))
    assert choose(other, fe("apiserver", 7443, backend_port=7443)).name == "apiserver"
    with pytest.raises(InputError, match=r"halb\.yaml: frontends: no frontend sends"):
        choose(other)


# --- through the CLI ----------------------------------------------------------------------


def cluster(tmp_path: Path, frontends: str, installer: str = "") -> Path:
    shutil.copy(FIXTURES / "hosts.ini", tmp_path / "hosts.ini")
    spec = tmp_path / "halb.yaml"
    spec.write_text(
        "cluster: test-ha\n"
        "inventory: hosts.ini\n"
        "vips:\n"
        "  internal: {address: 10.77.0.253, interface: eth0}\n"
        "  external: {address: 10.77.0.254, interface: eth0}\n"
        f"{frontends}{installer}"
    )
    return spec


FRONTENDS_8443 = (
    "frontends:\n"
    "  k8s-api: {vip: internal, port: 8443, backends: kube-master, backend_port: 6443}\n"
    "  console: {vip: external, port: 30880, backends: k8s-cluster, backend_port: 30880}\n"
)


def test_write_config_writes_the_port_of_the_apiserver_frontend(tmp_path: Path) -> None:
    spec = cluster(tmp_path, FRONTENDS_8443)
    target = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", target)
    r = runner.invoke(app, ["write-config", "-c", str(spec), str(target)])
    assert r.exit_code == 0, r.output
    assert "loadbalancer_apiserver:\n  address: 10.77.0.253\n  port: 8443\n" in target.read_text()


def test_write_config_names_competing_frontends(tmp_path: Path) -> None:
    spec = cluster(
        tmp_path,
        "frontends:\n"
        "  api-a: {vip: internal, port: 8443, backends: kube-master, backend_port: 6443}\n"
        "  api-b: {vip: internal, port: 9443, backends: kube-master, backend_port: 6443}\n",
    )
    target = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", target)
    before = target.read_bytes()
    r = runner.invoke(app, ["write-config", "-c", str(spec), str(target)])
    assert r.exit_code == 2
    assert "api-a (10.77.0.253:8443), api-b (10.77.0.253:9443)" in r.stderr
    assert target.read_bytes() == before


def test_kubekey_file_without_installer_gets_kubekey_keys(tmp_path: Path) -> None:
    spec = cluster(tmp_path, "")
    target = tmp_path / "config-sample.yaml"
    shutil.copy(FIXTURES / "kubekey-cluster.yaml", target)
    r = runner.invoke(app, ["write-config", "-c", str(spec), "--json", str(target)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["installer"] == "kubekey"
    text = target.read_text()
    assert 'address: "10.77.0.253"' in text
    assert "loadbalancer_apiserver" not in text


def test_content_against_installer_kind_is_exit_2(tmp_path: Path) -> None:
    spec = cluster(tmp_path, "", "installer: {kind: kubespray}\n")
    target = tmp_path / "config-sample.yaml"
    shutil.copy(FIXTURES / "kubekey-cluster.yaml", target)
    before = target.read_bytes()
    r = runner.invoke(app, ["write-config", "-c", str(spec), str(target)])
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert "\n" not in line
    assert (
        "reads as a kubekey config" in line and "installer.kind in halb.yaml says kubespray" in line
    )
    assert target.read_bytes() == before
    r = runner.invoke(
        app, ["write-config", "-c", str(spec), "--installer", "kubesphere", str(target)]
    )
    assert r.exit_code == 2 and "--installer says kubesphere" in r.stderr
