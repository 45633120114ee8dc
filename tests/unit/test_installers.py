"""Round-trip edits of installer configs: only the LB lines change, nothing else moves."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from halb.errors import InputError
from halb.installers import EDITORS, edit
from halb.installers.edit import EditResult, LBSettings, scalar_text
from halb.installers.kubekey import edit_cluster_config
from halb.installers.kubesphere import edit_common_yaml
from halb.installers.kubespray import edit_kubespray_vars

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
SETTINGS = LBSettings("192.168.0.253", 6443, "lb.kubesphere.local", ("192.168.0.254",))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines of a unified diff."""
    removed: list[str] = []
    added: list[str] = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm=""):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
    return removed, added


KUBESPRAY_ADDED = [
    'apiserver_loadbalancer_domain_name: "lb.kubesphere.local"',
    "loadbalancer_apiserver:",
    "  address: 192.168.0.253",
    "  port: 6443",
    "supplementary_addresses_in_ssl_keys:",
    "  - 192.168.0.253",
    "  - 192.168.0.254",
    "  - lb.kubesphere.local",
]


@pytest.mark.parametrize(
    ("name", "fn", "example_last"),
    [
        ("kubesphere-common.yaml", edit_common_yaml, "#   port: 6443"),
        ("kubespray-all.yml", edit_kubespray_vars, "#   port: 8383"),
    ],
)
def test_kubespray_shapes_only_add_lines_after_the_example(
    name: str, fn: Callable[[str, LBSettings, str], EditResult], example_last: str
) -> None:
    before = fixture(name)
    result = fn(before, SETTINGS, name)
    removed, added = changes(before, result.text)
    assert removed == []
    assert added == KUBESPRAY_ADDED
    lines = result.text.splitlines()
    # Right after the commented example, which is still a comment.
    at = lines.index(example_last)
    assert lines[at + 1 : at + 1 + len(KUBESPRAY_ADDED)] == KUBESPRAY_ADDED
    assert result.warnings == ()
    data = yaml.safe_load(result.text)
    assert data["loadbalancer_apiserver"] == {"address": "192.168.0.253", "port": 6443}
    assert data["apiserver_loadbalancer_domain_name"] == "lb.kubesphere.local"


def test_every_original_line_survives_in_order() -> None:
    for name, kind in [
        ("kubesphere-common.yaml", "kubesphere"),
        ("kubespray-all.yml", "kubespray"),
    ]:
        before = fixture(name)
        after = edit(kind, before, SETTINGS, name).text
        sm = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True))
        kept = sum(block.size for block in sm.get_matching_blocks())
        assert kept == len(before.splitlines(True))  # trailing spaces and all


@pytest.mark.parametrize("kind", sorted(EDITORS))
def test_idempotent(kind: str) -> None:
    name = {
        "kubesphere": "kubesphere-common.yaml",
        "kubespray": "kubespray-all.yml",
        "kubekey": "kubekey-cluster.yaml",
    }[kind]
    first = edit(kind, fixture(name), SETTINGS, name).text
    second = edit(kind, first, SETTINGS, name).text
    assert second == first
    assert first != fixture(name)


def test_no_example_block_appends_at_end() -> None:
    before = "---\n# settings\nkube_version: v1.16.7\n\nlist:\n  - a\n"
    after = edit_kubespray_vars(before, SETTINGS, "all.yml").text
    assert after == before + "\n".join(KUBESPRAY_ADDED) + "\n"


def test_missing_final_newline_is_kept_apart() -> None:
    after = edit_kubespray_vars("a: 1", SETTINGS, "all.yml").text
    assert after.startswith("a: 1\napiserver_loadbalancer_domain_name:")


def test_existing_values_are_updated_in_place() -> None:
    before = (
        "# lb\n"
        "apiserver_loadbalancer_domain_name: 'old.example'  # keep me\n"
        "other: 1\n"
        "loadbalancer_apiserver:\n"
        "  address: 10.0.0.1   # the old LB\n"
        '  port: "1234"\n'
        "supplementary_addresses_in_ssl_keys: [10.0.0.1]\n"
        "tail: true\n"
    )
    after = edit_kubespray_vars(before, SETTINGS, "all.yml").text
    assert after == (
        "# lb\n"
        "apiserver_loadbalancer_domain_name: 'lb.kubesphere.local'  # keep me\n"
        "other: 1\n"
        "loadbalancer_apiserver:\n"
        "  address: 192.168.0.253   # the old LB\n"
        "  port: 6443\n"
        "supplementary_addresses_in_ssl_keys: [10.0.0.1, 192.168.0.253, 192.168.0.254, "
        "lb.kubesphere.local]\n"
        "tail: true\n"
    )


def test_partial_lb_block_gets_the_missing_key_inside_it() -> None:
    before = "loadbalancer_apiserver:\n    address: 192.168.0.253\n\n# next\nnext: 1\n"
    after = edit_kubespray_vars(before, SETTINGS, "all.yml").text
    removed, added = changes(before, after)
    assert removed == []
    assert added[0] == "    port: 6443"
    assert after.startswith("loadbalancer_apiserver:\n    address: 192.168.0.253\n    port: 6443\n")


def test_empty_lb_key_gets_a_block() -> None:
    before = "loadbalancer_apiserver:\nsupplementary_addresses_in_ssl_keys:\nx: 1\n"
    after = edit_kubespray_vars(before, SETTINGS, "all.yml").text
    assert yaml.safe_load(after)["loadbalancer_apiserver"] == {
        "address": "192.168.0.253",
        "port": 6443,
    }
    assert yaml.safe_load(after)["supplementary_addresses_in_ssl_keys"] == SETTINGS.sans
    assert changes(before, after)[0] == []


def test_existing_san_entries_are_kept_and_not_repeated() -> None:
    before = "supplementary_addresses_in_ssl_keys:\n- 10.1.1.1\n- lb.kubesphere.local\nz: 0\n"
    after = edit_kubespray_vars(before, SETTINGS, "all.yml").text
    sans = yaml.safe_load(after)["supplementary_addresses_in_ssl_keys"]
    assert sans == ["10.1.1.1", "lb.kubesphere.local", "192.168.0.253", "192.168.0.254"]
    assert "- 192.168.0.253\n- 192.168.0.254\nz: 0" in after  # same dash style as the list


def test_kubekey_sets_endpoint_in_place_and_adds_sans() -> None:
    before = fixture("kubekey-cluster.yaml")
    result = edit_cluster_config(before, SETTINGS, "cluster.yaml")
    removed, added = changes(before, result.text)
    # The address line changes in place: quote style and trailing spaces stay.
    assert removed == ['    address: ""      ']
    assert added == [
        '    address: "192.168.0.253"      ',
        "      - 192.168.0.253",
        "      - 192.168.0.254",
        "      - lb.kubesphere.local",
    ]
    assert result.warnings == ()
    spec = yaml.safe_load(result.text)["spec"]
    assert spec["controlPlaneEndpoint"] == {
        "internalLoadbalancer": "",
        "externalDNS": False,
        "domain": "lb.kubesphere.local",
        "address": "192.168.0.253",
        "port": 6443,
    }
    assert spec["kubernetes"]["apiserverCertExtraSans"] == [
        "10.10.0.200",
        "api.example.internal",
        "192.168.0.253",
        "192.168.0.254",
        "lb.kubesphere.local",
    ]


def test_kubekey_other_domain_and_port_are_updated() -> None:
    before = fixture("kubekey-cluster.yaml")
    s = LBSettings("10.10.0.250", 8443, "api.halb.test")
    after = edit_cluster_config(before, s, "c.yaml").text
    removed, added = changes(before, after)
    assert removed == ["    domain: lb.kubesphere.local", '    address: ""      ', "    port: 6443"]
    assert added[:3] == [
        "    domain: api.halb.test",
        '    address: "10.10.0.250"      ',
        "    port: 8443",
    ]


@pytest.mark.parametrize("internal", ["haproxy", "kube-vip"])
def test_kubekey_internal_lb_is_left_alone_with_a_warning(internal: str) -> None:
    before = fixture("kubekey-cluster.yaml").replace(
        'internalLoadbalancer: ""', f"internalLoadbalancer: {internal}"
    )
    result = edit_cluster_config(before, SETTINGS, "c.yaml")
    assert f"internalLoadbalancer: {internal}\n" in result.text
    assert len(result.warnings) == 1
    assert "internalLoadbalancer" in result.warnings[0] and internal in result.warnings[0]


def test_kubekey_external_dns_warns() -> None:
    before = fixture("kubekey-cluster.yaml").replace("externalDNS: false", "externalDNS: true")
    result = edit_cluster_config(before, SETTINGS, "c.yaml")
    assert any("externalDNS" in w for w in result.warnings)


def test_kubekey_without_endpoint_or_kubernetes_gets_them_added() -> None:
    before = (
        "apiVersion: kubekey.kubesphere.io/v1alpha2\n"
        "kind: Cluster\n"
        "spec:\n"
        "  roleGroups:\n"
        "    etcd:\n"
        "    - m1\n"
        "  # the end\n"
    )
    after = edit_cluster_config(before, SETTINGS, "c.yaml").text
    removed, added = changes(before, after)
    assert removed == []
    assert added == [
        "  controlPlaneEndpoint:",
        "    domain: lb.kubesphere.local",
        "    address: 192.168.0.253",
        "    port: 6443",
        "  kubernetes:",
        "    apiserverCertExtraSans:",
        "    - 192.168.0.253",
        "    - 192.168.0.254",
        "    - lb.kubesphere.local",
    ]
    assert after.endswith("  # the end\n")
    assert edit_cluster_config(after, SETTINGS, "c.yaml").text == after


def test_kubekey_kubernetes_without_sans_gets_the_list() -> None:
    before = (
        "kind: Cluster\nspec:\n  kubernetes:\n    version: v1.26.5\n  etcd:\n    type: kubekey\n"
    )
    after = edit_cluster_config(before, SETTINGS, "c.yaml").text
    assert "    version: v1.26.5\n    apiserverCertExtraSans:\n    - 192.168.0.253\n" in after
    assert yaml.safe_load(after)["spec"]["etcd"] == {"type": "kubekey"}


@pytest.mark.parametrize(
    ("kind", "text", "needle"),
    [
        ("kubesphere", "a: [1, 2\n", "not valid YAML (line"),
        ("kubesphere", "- a\n- b\n", "top level is a list"),
        ("kubespray", "", "is empty"),
        ("kubespray", "a: 1\n---\nb: 2\n", "2 YAML documents"),
        ("kubespray", "loadbalancer_apiserver: 10.0.0.1\n", "loadbalancer_apiserver is text"),
        ("kubespray", "loadbalancer_apiserver: {address: 1.2.3.4}\n", "written inline"),
        ("kubespray", "supplementary_addresses_in_ssl_keys: x\n", "expected a list"),
        ("kubekey", "kind: Cluster\nmetadata: {}\n", "spec: missing"),
        ("kubekey", "kind: ClusterConfiguration\nspec: {}\n", "expected a KubeKey"),
        ("kubekey", "kind: Cluster\nspec:\n  controlPlaneEndpoint: []\n", "spec.controlPlane"),
        ("kubekey", "kind: Cluster\nspec:\n  kubernetes: 1\n  x: 1\n", "spec.kubernetes"),
    ],
)
def test_bad_input_names_the_file_and_key(kind: str, text: str, needle: str) -> None:
    with pytest.raises(InputError) as e:
        edit(kind, text, SETTINGS, "conf/x.yaml")
    assert str(e.value).startswith("conf/x.yaml: ")
    assert needle in str(e.value)


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match="kubesphere, kubekey, kubespray"):
        edit("rke", "a: 1\n", SETTINGS, "x")


def test_layout_that_cannot_be_edited_cleanly_is_refused() -> None:
    # A plain scalar continued on the next line cannot be replaced on one line.
    text = "apiserver_loadbalancer_domain_name: old\n  name\n"
    with pytest.raises(InputError, match="set it by hand"):
        edit_kubespray_vars(text, SETTINGS, "all.yml")


@pytest.mark.parametrize(
    ("value", "quote", "expected"),
    [
        ("192.168.0.1", "", "192.168.0.1"),
        ("lb.example", '"', '"lb.example"'),
        ("it's", "'", "'it''s'"),
        ("yes", "", '"yes"'),
        ("1.5", "", '"1.5"'),
        ("fd00::1", "", "fd00::1"),
        ("a: b", "", '"a: b"'),
        (6443, '"', "6443"),
    ],
)
def test_scalar_text_keeps_strings_strings(value: str | int, quote: str, expected: str) -> None:
    assert scalar_text(value, quote) == expected
    assert yaml.safe_load(f"k: {expected}")["k"] == value
