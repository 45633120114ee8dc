"""write-config with an IPv6 or dual-stack apiserver endpoint: each installer's IPv6 form,
and a clear refusal where the installer cannot take one (docs/installers.md has the
sources)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from halb.errors import InputError
from halb.installers import edit, lb_settings
from halb.installers.edit import LBSettings
from halb.spec import load_cluster
from tests.unit.test_kubekey_docs import V4

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
V6 = LBSettings("fd00:20:1::250", 6443, "lb.kubesphere.local", ("fd00:20:1::251",))
GOLDEN = Path(__file__).parent.parent / "golden" / "cases"


def test_kubespray_takes_the_address_and_warns_about_old_versions() -> None:
    text = (FIXTURES / "kubespray-all.yml").read_text()
    settings = LBSettings(V6.address, 6443, V6.address, V6.extra_sans)  # no installer.domain
    result = edit("kubespray", text, settings, "all.yml")
    data = yaml.safe_load(result.text)
    assert data["loadbalancer_apiserver"] == {"address": "fd00:20:1::250", "port": 6443}
    assert data["apiserver_loadbalancer_domain_name"] == "fd00:20:1::250"
    assert data["supplementary_addresses_in_ssl_keys"] == ["fd00:20:1::250", "fd00:20:1::251"]
    (warning,) = result.warnings
    assert "https://[ADDRESS]:PORT" in warning and "installer.domain" in warning


def test_kubespray_with_a_domain_keeps_it() -> None:
    text = (FIXTURES / "kubespray-all.yml").read_text()
    result = edit("kubespray", text, V6, "all.yml")
    data = yaml.safe_load(result.text)
    assert data["apiserver_loadbalancer_domain_name"] == "lb.kubesphere.local"
    assert data["loadbalancer_apiserver"]["address"] == "fd00:20:1::250"
    assert "DNS must resolve it" in result.warnings[0]


def test_kubekey_cluster_takes_the_address_with_a_warning() -> None:
    text = (FIXTURES / "kubekey-cluster.yaml").read_text()
    result = edit("kubekey", text, V6, "cluster.yaml")
    cpe = yaml.safe_load(result.text)["spec"]["controlPlaneEndpoint"]
    assert cpe["address"] == "fd00:20:1::250" and cpe["domain"] == "lb.kubesphere.local"
    assert any("without brackets" in w for w in result.warnings)


def test_kubekey_v4_refuses_an_ipv6_host() -> None:
    with pytest.raises(InputError, match="KubeKey v4 writes kubeadm's controlPlaneEndpoint"):
        edit("kubekey", V4, V6, "config.yaml")


def test_kubesphere_21_refuses_an_ipv6_endpoint() -> None:
    text = (FIXTURES / "kubesphere-common.yaml").read_text()
    with pytest.raises(InputError, match=r"KubeSphere 2.1 installs Kubernetes 1.16"):
        edit("kubesphere", text, V6, "common.yaml")


def test_dual_stack_writes_the_ipv4_endpoint_and_both_sans() -> None:
    cluster = load_cluster(GOLDEN / "dual-stack" / "halb.yaml")
    s = lb_settings(cluster, "kubesphere")
    assert s.address == "172.20.1.250"
    assert s.sans == [
        "172.20.1.250",
        "fd00:20:1::250",
        "172.20.1.251",
        "fd00:20:1::251",
        "lb.kubesphere.local",
    ]
    text = (FIXTURES / "kubesphere-common.yaml").read_text()
    data = yaml.safe_load(edit("kubesphere", text, s, "common.yaml").text)
    assert data["loadbalancer_apiserver"]["address"] == "172.20.1.250"
    v4 = yaml.safe_load(edit("kubekey", V4, s, "config.yaml").text)
    assert v4["spec"]["kubernetes"]["control_plane_endpoint"]["host"] == "172.20.1.250"
