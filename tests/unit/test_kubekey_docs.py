"""KubeKey files with several documents, KubeKey v4 configs, and Kubespray's endpoint name."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from halb.errors import InputError
from halb.installers import edit
from halb.installers.domain import endpoint_domain
from halb.installers.edit import LBSettings
from halb.installers.kubekey_docs import edit_kubekey_config, split_documents
from halb.spec import InstallerSpec

S = LBSettings(address="10.9.0.100", port=6443, domain="lb.kubesphere.local")

CLUSTER = """\
apiVersion: kubekey.kubesphere.io/v1alpha2
kind: Cluster
metadata:
  name: s
spec:
  controlPlaneEndpoint:
    domain: lb.kubesphere.local
    address: ""
    port: 6443
  kubernetes:
    version: v1.23.10
"""
KS = """\
apiVersion: installer.kubesphere.io/v1alpha1
kind: ClusterConfiguration
metadata:
  name: ks-installer{trailing}
spec:
  console:
    port: 30880  # the NodePort
""".format(trailing="   ")  # trailing blanks must survive too


def test_split_documents_joins_back_exactly() -> None:
    text = "# head\n---\na: 1\n--- # two\r\nb: 2\n...\n---\n"
    docs = split_documents(text, "f")
    assert "".join(d.text for d in docs) == text
    assert [d.marker for d in docs] == ["", "---\n", "--- # two\r\n", "---\n"]


def test_content_on_the_marker_line_is_refused() -> None:
    with pytest.raises(InputError, match="a '---' line carries content"):
        edit_kubekey_config(CLUSTER + "--- !tag\nb: 1\n", S, "c.yaml")


@pytest.mark.parametrize("lead", ["", "---\n", "# kk create config\n---\n"])
def test_cluster_then_ks_document_edits_only_the_cluster(lead: str) -> None:
    text = lead + CLUSTER + "\n\n---\n" + KS
    out = edit_kubekey_config(text, S, "c.yaml").text
    assert out.endswith("\n\n---\n" + KS)  # the second document, byte for byte
    assert out.startswith(lead)
    docs = list(yaml.safe_load_all(out))
    cluster = next(d for d in docs if d and d["kind"] == "Cluster")
    assert cluster["spec"]["controlPlaneEndpoint"]["address"] == "10.9.0.100"
    assert edit_kubekey_config(out, S, "c.yaml").text == out


def test_ks_document_first_then_cluster() -> None:
    text = KS + "---\n" + CLUSTER
    out = edit_kubekey_config(text, S, "c.yaml").text
    assert out.startswith(KS + "---\n")


def test_no_or_two_cluster_documents_are_refused() -> None:
    with pytest.raises(InputError, match="none of its 2 YAML documents"):
        edit_kubekey_config(KS + "---\n" + KS, S, "c.yaml")
    with pytest.raises(InputError, match="2 KubeKey documents"):
        edit_kubekey_config(CLUSTER + "---\n" + CLUSTER, S, "c.yaml")


def test_error_in_a_document_names_it() -> None:
    with pytest.raises(InputError, match=r"c.yaml \(document 2\): spec.controlPlaneEndpoint"):
        bad = CLUSTER.replace("  controlPlaneEndpoint:\n", "  controlPlaneEndpoint: []\n  x:\n")
        edit_kubekey_config(KS + "---\n" + bad, S, "c.yaml")


def test_quoted_port_stays_quoted() -> None:
    text = CLUSTER.replace("port: 6443", 'port: "6443"')
    assert edit_kubekey_config(text, S, "c.yaml").text.count('port: "6443"') == 1
    moved = LBSettings(address="10.9.0.100", port=8443, domain="lb.kubesphere.local")
    out = edit_kubekey_config(text, moved, "c.yaml").text
    assert '    port: "8443"\n' in out
    assert yaml.safe_load(out)["spec"]["controlPlaneEndpoint"]["port"] == "8443"


# --------------------------------------------------------------------------- v4

V4 = """\
apiVersion: kubekey.kubesphere.io/v1
kind: Config
spec:
  kubernetes:
    kube_version: v1.33.1
    control_plane_endpoint:
      host: lb.kubesphere.local
      port: 6443
      type: local
  cni:
    type: calico
"""


def test_v4_sets_host_and_port_in_place() -> None:
    out = edit_kubekey_config(V4, S, "config.yaml").text
    assert out == V4.replace("host: lb.kubesphere.local", "host: 10.9.0.100")
    assert edit_kubekey_config(out, S, "config.yaml").text == out


@pytest.mark.parametrize(
    "text,where",
    [
        (V4.replace("    control_plane_endpoint:\n      host: lb.kubesphere.local\n"
                    "      port: 6443\n      type: local\n", ""), "kubernetes"),
        ("apiVersion: kubekey.kubesphere.io/v1\nkind: Config\nspec:\n  cni:\n    type: calico\n",
         "spec"),
        (V4.replace("      host: lb.kubesphere.local\n      port: 6443\n", ""), "cpe"),
    ],
)  # fmt: skip
def test_v4_adds_what_is_missing(text: str, where: str) -> None:
    out = edit_kubekey_config(text, S, "config.yaml").text
    cpe = yaml.safe_load(out)["spec"]["kubernetes"]["control_plane_endpoint"]
    assert cpe["host"] == "10.9.0.100" and cpe["port"] == 6443
    removed = [line for line in text.splitlines() if line not in out.splitlines()]
    assert removed == []


@pytest.mark.parametrize("kind", ["kube_vip", "haproxy"])
def test_v4_own_lb_types_warn_and_stay(kind: str) -> None:
    text = V4.replace("type: local", f"type: {kind}")
    result = edit_kubekey_config(text, S, "config.yaml")
    assert f"type: {kind}" in result.text
    assert any(f'type is "{kind}"' in w for w in result.warnings)


def test_v4_unknown_version_is_refused_by_name() -> None:
    text = V4.replace("kubekey.kubesphere.io/v1\n", "kubekey.kubesphere.io/v2beta1\n")
    with pytest.raises(InputError, match=r"apiVersion 'kubekey\.kubesphere\.io/v2beta1'"):
        edit_kubekey_config(text, S, "config.yaml")


def test_v4_after_another_document() -> None:
    text = "apiVersion: kubekey.kubesphere.io/v1\nkind: Inventory\nspec: {}\n---\n" + V4
    out = edit_kubekey_config(text, S, "config.yaml").text
    assert out.startswith("apiVersion: kubekey.kubesphere.io/v1\nkind: Inventory\nspec: {}\n---\n")


# --------------------------------------------------------------------------- Kubespray


def _settings(installer: dict[str, Any], kind: str | None = None) -> LBSettings:
    ins = InstallerSpec.model_validate(installer)
    domain = endpoint_domain(kind or ins.kind, ins, "10.9.0.100")
    return LBSettings(address="10.9.0.100", port=6443, domain=domain)


def test_kubespray_endpoint_is_the_vip_unless_a_domain_is_set() -> None:
    assert _settings({"kind": "kubespray"}).domain == "10.9.0.100"
    assert _settings({"kind": "kubesphere"}).domain == "lb.kubesphere.local"
    assert _settings({"kind": "kubesphere"}, "kubespray").domain == "10.9.0.100"
    s = _settings({"kind": "kubespray", "domain": "api.example.internal"})
    assert s.domain == "api.example.internal"
    result = edit("kubespray", "a: 1\n", s, "all.yml")
    assert any("2.29+ no longer writes it to /etc/hosts" in w for w in result.warnings)
    plain = edit("kubespray", "a: 1\n", _settings({"kind": "kubespray"}), "all.yml")
    assert plain.warnings == ()
    assert yaml.safe_load(plain.text)["apiserver_loadbalancer_domain_name"] == "10.9.0.100"
