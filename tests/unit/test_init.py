"""`halb init` writes a commented starter that validates and renders, with and without an
[lb] group (co-located on the masters)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from halb.cli import app
from halb.render import render_cluster
from halb.spec import load_cluster

runner = CliRunner()

KS_SHAPE = """\
; KubeSphere 2.1 shape
[all]
master ansible_connection=local  ip=10.66.0.5
node1  ansible_host=10.66.0.6  ip=10.66.0.6  ansible_ssh_pass=Example@1
node2  ansible_host=10.66.0.8  ip=10.66.0.8  ansible_ssh_pass=Example@1

[kube-master]
master

[kube-node]
node1
node2

[etcd]
master

[k8s-cluster:children]
kube-node
kube-master
"""

LB = (
    "\n[lb]\nlb1 ansible_host=10.66.0.11 ip=10.66.0.11\nlb2 ansible_host=10.66.0.12 ip=10.66.0.12\n"
)


def init(tmp_path: Path, inventory: str, *extra: str) -> tuple[int, str]:
    (tmp_path / "hosts.ini").write_text(inventory)
    r = runner.invoke(
        app,
        ["init", "-i", str(tmp_path / "hosts.ini"), "--vip", "10.66.0.253",
         "-o", str(tmp_path / "halb.yaml"), *extra],
    )  # fmt: skip
    return r.exit_code, r.output


def test_init_with_lb_group(tmp_path: Path) -> None:
    code, out = init(tmp_path, KS_SHAPE + LB, "--external-vip", "10.66.0.254")
    assert code == 0, out
    text = (tmp_path / "halb.yaml").read_text()
    assert text.startswith("# halb cluster spec")
    assert "inventory: hosts.ini" in text
    data = yaml.safe_load(text)
    assert data["vips"]["external"]["address"] == "10.66.0.254"
    assert data["frontends"]["apiserver"]["port"] == 6443
    cluster = load_cluster(tmp_path / "halb.yaml")
    assert cluster.lb_host_names == ("lb1", "lb2")
    assert set(render_cluster(cluster)) == {"lb1", "lb2"}


def test_init_colocated_keeps_ports_and_says_so(tmp_path: Path) -> None:
    code, out = init(tmp_path, KS_SHAPE)
    assert code == 0, out
    assert "no [lb] group" in out and "clients keep VIP:6443" in out
    data = yaml.safe_load((tmp_path / "halb.yaml").read_text())
    assert data["frontends"]["apiserver"]["port"] == 6443
    assert data["frontends"]["console"]["port"] == 30880
    cluster = load_cluster(tmp_path / "halb.yaml")
    assert cluster.lb_host_names == ("master",)
    assert cluster.apiserver_endpoint == ("10.66.0.253", 6443)
    assert [(f.name, f.listen_port) for f in cluster.redirected] == [
        ("apiserver", 9445),
        ("console", 9446),
    ]


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert init(tmp_path, KS_SHAPE + LB)[0] == 0
    code, out = init(tmp_path, KS_SHAPE + LB)
    assert code == 2 and "exists; use --force" in out
    assert init(tmp_path, KS_SHAPE + LB, "--force")[0] == 0


def test_init_bad_vip(tmp_path: Path) -> None:
    code, out = init(tmp_path, KS_SHAPE + LB, "--external-vip", "10.66.0")
    assert code == 2 and "--external-vip: '10.66.0' is not an IPv4 address" in out
    assert not (tmp_path / "halb.yaml").exists()


# --------------------------------------------------------------------------- hostile input


def test_init_quotes_what_it_writes(tmp_path: Path) -> None:
    # An inventory whose file name would end a YAML line and add keys if written raw.
    odd = tmp_path / "in#v: x\ncluster: evil\n.ini"
    odd.write_text(KS_SHAPE + LB)
    out = tmp_path / "halb.yaml"
    r = runner.invoke(app, ["init", "-i", str(odd), "--vip", "10.66.0.253", "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    data = yaml.safe_load(text)
    assert set(data) == {"cluster", "inventory", "vips", "frontends", "vrrp", "installer"}
    assert data["inventory"] == odd.name
    assert data["cluster"] != "evil"
    assert "# The installer's Ansible inventory" in text  # the starter's comments stay
    assert load_cluster(out).inventory.source.name == odd.name


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--cluster", "a\nb: c", "--cluster: cluster name"),
        ("--cluster", "x" * 300, "--cluster: cluster name"),
        ("--interface", "eth0\nx: 1", "--interface: interface"),
        ("--interface", "eth0 #", "--interface: interface"),
        ("--vip", "10.66.0.253\nx: 1", "--vip:"),
        ("--vip", "255.255.255.255", "--vip: 255.255.255.255 cannot be a VIP"),
        ("--external-vip", "224.0.0.1", "--external-vip: 224.0.0.1 is a multicast"),
    ],
)
def test_init_checks_its_flags(tmp_path: Path, flag: str, value: str, message: str) -> None:
    (tmp_path / "hosts.ini").write_text(KS_SHAPE + LB)
    args = ["init", "-i", str(tmp_path / "hosts.ini"), "-o", str(tmp_path / "halb.yaml")]
    if flag != "--vip":
        args += ["--vip", "10.66.0.253"]
    r = runner.invoke(app, [*args, flag, value])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "halb.yaml").exists()


def test_init_into_a_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(KS_SHAPE + LB)
    out = tmp_path / "nope" / "halb.yaml"
    r = runner.invoke(
        app, ["init", "-i", str(tmp_path / "hosts.ini"), "--vip", "10.66.0.253", "-o", str(out)]
    )
    assert r.exit_code == 2, r.output
    assert "folder does not exist" in r.output
    assert not out.parent.exists()


def test_init_onto_a_folder(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(KS_SHAPE + LB)
    r = runner.invoke(
        app,
        ["init", "-i", str(tmp_path / "hosts.ini"), "--vip", "10.66.0.253", "-o", str(tmp_path)],
    )
    assert r.exit_code == 2 and "is a folder" in r.output, r.output


def test_init_does_not_follow_a_planted_temp_symlink(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(KS_SHAPE + LB)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / ".halb.yaml.tmp").symlink_to(victim)  # the old fixed temp name
    code, out = init(tmp_path, KS_SHAPE + LB)
    assert code == 0, out
    assert victim.read_text() == "keep"
    assert yaml.safe_load((tmp_path / "halb.yaml").read_text())["cluster"]
