"""Inventory reading: errors name the file (and INI line), key features behave as in Ansible."""

from __future__ import annotations

from pathlib import Path

import pytest

from halb.errors import ExitStatus, InventoryError
from halb.inventory import Inventory, load_inventory, parse_ini, parse_yaml

SRC = Path("/inv/hosts.ini")


def ini(text: str) -> Inventory:
    return parse_ini(text, SRC)


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data)
    return p


# --------------------------------------------------------------------------- errors


def load_error(path: Path) -> str:
    with pytest.raises(InventoryError) as ei:
        load_inventory(path)
    assert ei.value.exit_status is ExitStatus.BAD_INPUT
    msg = str(ei.value)
    assert str(path) in msg
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in load_error(tmp_path / "nope.ini")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in load_error(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    # A symlink loop cannot be read, not even by root (who ignores file modes).
    p = tmp_path / "hosts.ini"
    p.symlink_to(p)
    assert "cannot read" in load_error(p)


@pytest.mark.parametrize("content", ["", "  \n\n\t\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    assert "empty" in load_error(write(tmp_path, "hosts.ini", content))


def test_binary_file(tmp_path: Path) -> None:
    assert "NUL" in load_error(write(tmp_path, "hosts.ini", b"[a]\nh\x00\x01\x02\n"))


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    msg = load_error(write(tmp_path, "hosts.ini", b"[a]\nh1\nh\xe92\n"))
    assert ":3:" in msg and "UTF-8" in msg


def test_not_utf8_in_comment_is_tolerated_like_ansible(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", b"; caf\xe9\n[a]\nh1\n"))
    assert list(inv.hosts) == ["h1"]


def test_bom_is_refused(tmp_path: Path) -> None:
    assert "byte order mark" in load_error(write(tmp_path, "hosts.ini", b"\xef\xbb\xbf[a]\nh\n"))


def test_vault_file_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "hosts.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    assert "vault" in load_error(p)


@pytest.mark.parametrize("content", ["- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_not_a_mapping(tmp_path: Path, content: str) -> None:
    assert "must be a mapping" in load_error(write(tmp_path, "hosts.yml", content))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    msg = load_error(write(tmp_path, "hosts.yaml", "all:\n  hosts:\n    a: [1\n"))
    assert "invalid YAML" in msg


def test_yaml_plugin_config_is_refused(tmp_path: Path) -> None:
    msg = load_error(write(tmp_path, "aws.yml", "plugin: aws_ec2\nregions: [x]\n"))
    assert "plugin" in msg


def test_yaml_bad_section(tmp_path: Path) -> None:
    msg = load_error(write(tmp_path, "h.yml", "all:\n  hosts: [a, b]\n"))
    assert "'hosts' must be a mapping" in msg


def test_yaml_numeric_host_needs_quotes(tmp_path: Path) -> None:
    assert "must be a string" in load_error(write(tmp_path, "h.yml", "g:\n  hosts:\n    1:\n"))


def test_yaml_vault_value_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "h.yml", "all:\n  vars:\n    pw: !vault |\n      $ANSIBLE_VAULT;1.1\n")
    msg = load_error(p)
    assert "vault" in msg and ":3:" in msg


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[g]\nnode[3:1]\n", 2, "bad host range"),
        ("[g]\nnode[a:3]\n", 2, "bad host range"),
        ("[g]\nnode[1:2:3:4]\n", 2, "bad host range"),
        ("[g]\nnode[01:100]\n", 2, "same length"),
        ("[g]\nnode[z:a]\n", 2, "bad host range"),
        ("[g]\nnode[1:]\n", 2, "end value"),
        ("[g]\nnode[1:5:0]\n", 2, "bad host range"),
        ("[g]\nnode[1\n", 2, "bad host range"),
        ("\n[a:children]\na\n", 3, "child of itself"),
        ("[a:children]\nb\n[b:children]\na\n", 4, "cycle"),
        ("[a:children]\nb\n[b:children]\nc\n[c:children]\na\n", 6, "cycle"),
        ("[g:weird]\nx\n", 1, "unknown type"),
        ("[bad group]\n", 1, "invalid section"),
        ("[g:vars]\nx=1\n", 1, "never defined"),
        ("[p:children]\nmissing\n", 2, "never defined"),
        ("[g:vars]\nnovalue\n[g]\n", 2, "key=value"),
        ("[g:children]\ntwo words\n", 2, "one group name"),
        ("[g]\nh1 'unclosed\n", 2, "cannot split"),
        ("[g]\nhost:\n", 2, "ends with ':'"),
        ("---\nall:\n", 1, "YAML"),
        ('[g]\nh1 x="{[1]: 2}"\n', 2, "not a usable literal"),
        ("[g]\nh1\n[g:vars]\nansible_group_priority=high\n", 4, "ansible_group_priority"),
    ],
)
def test_ini_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InventoryError) as ei:
        ini(text)
    msg = str(ei.value)
    assert msg.startswith(f"{SRC}:{line}: "), msg
    assert words in msg


def test_errors_never_quote_a_secret() -> None:
    # An unquoted password with a space: the second half is a stray word.
    with pytest.raises(InventoryError) as ei:
        ini("[g]\nh1 ansible_ssh_pass=Top Secret99\n")
    assert "Secret99" not in str(ei.value)
    assert "word 3" in str(ei.value)


# --------------------------------------------------------------------------- features


def test_kubesphere_shape() -> None:
    inv = ini(
        "; comment\n[all]\n"
        "m ansible_connection=local  ip=10.0.0.5\n"
        "n1  ansible_host=10.0.0.6  ip=10.0.0.6  ansible_ssh_pass=Pw@123\n"
        "[kube-master]\nm\n[kube-node]\nn1\n[etcd]\nm\n"
        "[k8s-cluster:children]\nkube-node\nkube-master \n"
    )
    assert [h.name for h in inv.group_hosts("k8s-cluster")] == ["m", "n1"]
    m, n1 = inv.hosts["m"], inv.hosts["n1"]
    assert (m.connection, m.ip, m.ssh_address) == ("local", "10.0.0.5", "10.0.0.5")
    assert (n1.password, n1.port, n1.user) == ("Pw@123", 22, None)
    assert n1.groups == ("k8s-cluster", "kube-node")
    assert inv.groups["ungrouped"].hosts == ()


def test_kubespray_all_commented_out() -> None:
    inv = load_inventory(Path("/work/shared/real-world/kubespray/inventory.ini"))
    assert inv.hosts == {}
    assert inv.group_hosts("k8s-cluster") == []
    assert set(inv.groups["k8s-cluster"].children) == {"kube-master", "kube-node", "calico-rr"}


def test_ranges_keep_padding_and_stride() -> None:
    inv = ini("[g]\nnode[01:03]\nx[a:c]\nodd[1:10:2]\nip10.0.0.[8:10]\n")
    assert list(inv.hosts) == [
        "node01", "node02", "node03", "xa", "xb", "xc",
        "odd1", "odd3", "odd5", "odd7", "odd9",
        "ip10.0.0.8", "ip10.0.0.9", "ip10.0.0.10",
    ]  # fmt: skip


def test_host_port_syntax_and_first_sighting() -> None:
    inv = ini("[a]\nh1:2201\nh2:2202 ansible_port=2203\n[b]\nh1:2299\n")
    assert inv.hosts["h1"].port == 2201  # Ansible keeps the port of the first sighting
    assert inv.hosts["h2"].vars["ansible_port"] == 2203
    assert isinstance(inv.hosts["h1"].vars["ansible_port"], int)


def test_value_types_match_ansible() -> None:
    inv = ini(
        "[g]\nh a=22 b=True c=\"'22'\" d='x y' e=0755 f=1.5 g=None l=\"[1, 'x']\" i=10.0.0.1\n"
        "[g:vars]\nport=8080\nflag=False\ntext=hello world\ncmt=8080 # c\n"
    )
    v = inv.hosts["h"].vars
    assert v["a"] == 22 and type(v["a"]) is int
    assert v["b"] is True
    assert v["c"] == "22"
    assert v["d"] == "x y"
    assert v["e"] == "0755"
    assert v["f"] == 1.5
    assert v["g"] is None
    assert v["l"] == [1, "x"]
    assert v["i"] == "10.0.0.1"
    # [g:vars] values go through the same literal parsing in ansible-core.
    assert v["port"] == 8080 and v["flag"] is False
    assert v["text"] == "hello world"
    assert v["cmt"] == 8080


def test_comments() -> None:
    inv = ini(
        "# c\n; c\n  ; indented\n[g]  # c\nh1 a=1 # c\nh2 b=x#glued\n\n  \n[g:vars]\nv=a ; b\n"
    )
    assert dict(inv.hosts["h1"].vars) == {"a": 1, "v": "a ; b"}
    assert inv.hosts["h2"].vars["b"] == "x"


def test_semicolon_mid_host_line_is_an_error_like_ansible() -> None:
    with pytest.raises(InventoryError, match="not key=value"):
        ini("[g]\nh2 b=2 ; trailing\n")


def test_precedence_depth_then_priority_then_name() -> None:
    inv = ini(
        "[leaf]\nh\n[mid:children]\nleaf\n[b]\nh\n[a]\nh\n"
        "[all:vars]\nx=all\ny=all\nz=all\nw=all\n"
        "[mid:vars]\nx=mid\ny=mid\n[leaf:vars]\nx=leaf\n"
        "[a:vars]\nz=a\nw=a\n[b:vars]\nz=b\nw=b\nansible_group_priority=0\n"
    )
    v = inv.hosts["h"].vars
    assert v["x"] == "leaf"  # deepest group wins
    assert v["y"] == "mid"
    assert v["z"] == "a"  # same depth: b has the lower priority, so a is applied after it
    assert v["w"] == "a"
    assert "ansible_group_priority" not in v and inv.groups["b"].priority == 0


def test_host_vars_beat_group_vars_and_merge_across_groups() -> None:
    inv = ini("[a]\nh x=1 y=1\n[b]\nh y=2\n[a:vars]\nx=g\nz=g\n")
    assert dict(inv.hosts["h"].vars) == {"x": 1, "y": 2, "z": "g"}


def test_implicit_all_and_ungrouped() -> None:
    inv = ini("lone\n[all]\nonly_all\nboth\n[g]\nboth\n")
    assert inv.groups["ungrouped"].hosts == ("lone", "only_all")
    assert [h.name for h in inv.group_hosts("all")] == ["lone", "only_all", "both"]
    assert inv.groups["all"].children[:2] == ("ungrouped", "g")


def test_group_hosts_transitive_no_duplicates_in_order() -> None:
    inv = ini("[x]\nh3\nh1\n[y]\nh2\nh1\n[p:children]\nx\ny\n[q:children]\np\nx\n")
    assert [h.name for h in inv.group_hosts("q")] == ["h3", "h1", "h2"]
    with pytest.raises(KeyError):
        inv.group_hosts("nope")


def test_children_declared_before_groups() -> None:
    inv = ini("[top:children]\nlater\n[later:vars]\nv=1\n[later]\nh\n")
    assert inv.groups["top"].children == ("later",)
    assert inv.hosts["h"].vars == {"v": 1}


def test_host_named_like_group_warns() -> None:
    inv = ini("[etcd]\netcd\n")
    assert any("both a group and a host" in w for w in inv.warnings)


def test_yaml_inventory() -> None:
    inv = parse_yaml(
        "all:\n  vars: {ansible_user: root}\n  children:\n    k8s:\n      children:\n"
        "        masters:\n          hosts:\n            m[1:2]: {ip: 10.0.0.1}\n"
        "      vars: {ansible_user: ops}\n    lb:\n      hosts: lb1\n",
        Path("/inv/h.yml"),
    )
    assert [h.name for h in inv.group_hosts("k8s")] == ["m1", "m2"]
    assert inv.hosts["m1"].user == "ops"
    assert inv.hosts["lb1"].user == "root"


def test_yaml_unknown_key_is_a_warning(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "h.yml", "all:\n  host:\n    a:\n"))
    assert inv.hosts == {}
    assert any("'host'" in w for w in inv.warnings)


def test_format_choice(tmp_path: Path) -> None:
    yaml_text = "all:\n  hosts:\n    a:\n"
    ini_text = "[g]\nb\n"
    assert list(load_inventory(write(tmp_path, "hosts", yaml_text)).hosts) == ["a"]
    assert list(load_inventory(write(tmp_path, "inv", ini_text)).hosts) == ["b"]
    # A word list parses as a YAML string, not a mapping: INI, as Ansible does.
    assert list(load_inventory(write(tmp_path, "plain", "c\nd\n")).hosts) == ["c", "d"]
    # .ini is never YAML, .yml always is.
    assert "ends with ':'" in load_error(write(tmp_path, "x.ini", yaml_text))
    assert list(load_inventory(write(tmp_path, "y.yml", yaml_text)).hosts) == ["a"]


def test_real_kubesphere_inventory() -> None:
    inv = load_inventory(Path("/work/shared/real-world/kubesphere-2.1/hosts.ini"))
    assert list(inv.hosts) == ["master", "node1", "node2"]
    assert [h.name for h in inv.group_hosts("kube-master")] == ["master"]
    assert inv.hosts["node1"].ssh_address == "192.168.0.6"


def test_conflicting_addresses_are_reported_without_secrets() -> None:
    inv = ini(
        "[a]\nh1:2201 ip=10.0.0.1 ansible_ssh_pass=pw-one\n"
        "[b]\nh1:2299 ip=10.0.0.2 ansible_ssh_pass=pw-two\nh2 ip=10.0.0.3\nh2 ip=10.0.0.3\n"
    )
    msgs = [m for h, m in inv.conflicts if h == "h1"]
    assert len(inv.conflicts) == len(msgs) == 2
    assert "port 2299 (line 4) is ignored" in msgs[0] and "2201 (line 2)" in msgs[0]
    assert msgs[1] == "ip is 10.0.0.1 (line 2) and 10.0.0.2 (line 4); Ansible uses the last one"
    assert not any("pw-" in m for _, m in inv.conflicts)
    assert inv.hosts["h1"].ip == "10.0.0.2" and inv.hosts["h1"].port == 2201
