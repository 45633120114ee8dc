"""Each installer shape, end to end: init -> validate -> render --check -> write-config twice.

The fixtures under tests/fixtures/realworld/ are written in the shapes the installers use
(group names, folder layout, config documents), not copied from them. Each case runs in a
copy of its folder, so the neighbourhood `init` looks at is the real one. The inventories
are also read by `ansible-inventory --list` and must mean the same to halb.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from halb.cli import app
from halb.inventory import load_inventory
from halb.spec import load_cluster
from tests.needs import need

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
runner = CliRunner()


@dataclass(frozen=True)
class Case:
    name: str
    inventory: str  # relative to the case folder
    vip: str
    kind: str  # installer.kind init writes
    lb_hosts: tuple[str, ...]
    apiserver: tuple[str, int]  # backends group, frontend port
    console: tuple[str, int] | None  # None: no console frontend
    config: str | None  # installer.config init writes (relative to halb.yaml)


CASES = [
    Case("kubespray-2.16", "inventory/prod/hosts.yaml", "10.20.0.100", "kubespray",
         ("edge-1", "edge-2"), ("kube_control_plane", 6443), None,
         "inventory/prod/group_vars/all/all.yml"),
    Case("kubespray-master", "inventory/lab/inventory.ini", "10.30.0.100", "kubespray",
         ("ctl1", "ctl2", "ctl3"), ("kube_control_plane", 6443), None,
         "inventory/lab/group_vars/all/all.yml"),
    Case("kubeasz-1x", "etc/ansible/hosts", "10.40.0.100", "command",
         ("10.40.0.11", "10.40.0.12"), ("kube-master", 6443), None, None),
    Case("kubeasz-3x", "clusters/k8s-01/hosts", "10.50.0.100", "command",
         ("10.50.0.31", "10.50.0.32"), ("kube_master", 6443), None, None),
    Case("kubekey-1x", "hosts.ini", "10.60.0.100", "kubekey",
         ("kk-lb1", "kk-lb2"), ("master", 6443), ("worker", 30880), "config-sample.yaml"),
    Case("kubekey-3x-ks", "hosts.ini", "10.70.0.100", "kubekey",
         ("n1", "n2", "n3"), ("control-plane", 6443), ("worker", 30880), "config-sample.yaml"),
    Case("kubekey-3x", "hosts.ini", "10.75.0.100", "kubekey",
         ("b1", "b2"), ("control-plane", 6443), None, "cluster.yaml"),
    Case("kubekey-v4", "hosts.ini", "10.80.0.100", "kubekey",
         ("lbx", "lby"), ("kube_control_plane", 6443), None, "config.yaml"),
    Case("kubesphere-2.1", "kubesphere-all-v2.1.1/conf/hosts.ini", "10.90.0.100", "kubesphere",
         ("master1", "master2", "master3"), ("kube-master", 6443), ("k8s-cluster", 30880),
         "kubesphere-all-v2.1.1/conf/common.yaml"),
]  # fmt: skip
IDS = [c.name for c in CASES]
# LB hosts that run the apiserver: the public port stays, behind halb's nftables redirect
COLOCATED = {"kubespray-master", "kubeasz-1x", "kubekey-3x-ks", "kubesphere-2.1"}


def invoke(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


@pytest.fixture
def case_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    case: Case = request.param
    d = tmp_path / case.name
    shutil.copytree(REALWORLD / case.name, d)
    return d


def _init(d: Path, case: Case) -> tuple[int, str]:
    return invoke(
        "init", "-i", str(d / case.inventory), "--vip", case.vip, "-o", str(d / "halb.yaml")
    )


@pytest.mark.parametrize("case_dir,case", [(c, c) for c in CASES], ids=IDS, indirect=["case_dir"])
def test_init_validate_render(case_dir: Path, case: Case) -> None:
    code, out = _init(case_dir, case)
    assert code == 0, out
    spec = yaml.safe_load((case_dir / "halb.yaml").read_text())
    assert spec["installer"]["kind"] == case.kind
    assert spec["installer"].get("config") == case.config
    api = spec["frontends"]["apiserver"]
    assert (api["backends"], api["port"]) == case.apiserver
    console = spec["frontends"].get("console")
    assert (None if console is None else (console["backends"], console["port"])) == case.console
    if case.name in COLOCATED:
        assert "clients keep VIP:6443; HAProxy listens on 9445" in out, out

    code, out = invoke("validate", "-c", str(case_dir / "halb.yaml"))
    assert code == 0, out
    cluster = load_cluster(case_dir / "halb.yaml")
    assert cluster.lb_host_names == case.lb_hosts
    assert all(cluster.host_ip(h) for h in cluster.lb_hosts)

    need("haproxy", "keepalived")  # --check runs haproxy -c and keepalived -t
    code, out = invoke("render", "-c", str(case_dir / "halb.yaml"), "-o", str(case_dir / "out"),
                       "--check")  # fmt: skip
    assert code == 0, out
    assert "FAILED" not in out


def _documents_after_first(text: str) -> str:
    """Everything from the first `---` line after the Cluster/Config document on."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("---")]
    return "".join(lines[starts[0] :]) if starts else ""


@pytest.mark.parametrize(
    "case_dir,case", [(c, c) for c in CASES if c.config], ids=[c.name for c in CASES if c.config],
    indirect=["case_dir"],
)  # fmt: skip
def test_write_config_twice(case_dir: Path, case: Case) -> None:
    assert _init(case_dir, case)[0] == 0
    assert case.config is not None
    target = case_dir / case.config
    before = target.read_bytes()
    mode = target.stat().st_mode
    code, out = invoke("write-config", "-c", str(case_dir / "halb.yaml"))
    assert code == 0, out
    first = target.read_bytes()
    assert first != before and target.stat().st_mode == mode
    code, out = invoke("write-config", "-c", str(case_dir / "halb.yaml"))
    assert code == 0 and "already up to date" in out, out
    assert target.read_bytes() == first

    # Only the endpoint's own lines changed; every other line is still there, in order.
    diff = difflib.ndiff(before.decode().splitlines(), first.decode().splitlines())
    removed = [line[2:] for line in diff if line.startswith("- ")]
    assert all(re.match(r"\s*(address|port|host|domain):", line) for line in removed), removed

    docs = list(yaml.safe_load_all(first.decode()))
    cluster = load_cluster(case_dir / "halb.yaml")
    address, port = cluster.apiserver_endpoint
    main = docs[0]
    if case.kind == "kubekey" and main.get("kind") == "Cluster":
        cpe = main["spec"]["controlPlaneEndpoint"]
        assert cpe["address"] == address and int(cpe["port"]) == port
        # Anything after the Cluster document is the same, byte for byte.
        assert _documents_after_first(first.decode()) == _documents_after_first(before.decode())
    elif case.kind == "kubekey":
        cpe = main["spec"]["kubernetes"]["control_plane_endpoint"]
        assert (cpe["host"], cpe["port"]) == (address, port)
    else:
        assert main["loadbalancer_apiserver"] == {"address": address, "port": port}
        domain = main["apiserver_loadbalancer_domain_name"]
        # Kubespray 2.29+ writes no /etc/hosts: the endpoint is the VIP's address itself.
        assert domain == (address if case.kind == "kubespray" else "lb.kubesphere.local")


def test_kubekey_1x_quoted_port_stays_quoted(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "kubekey-1x")
    d = tmp_path / case.name
    shutil.copytree(REALWORLD / case.name, d)
    assert _init(d, case)[0] == 0
    text = (d / "halb.yaml").read_text().replace("port: 6443, backends: master", "port: 7443, "
                                                 "backends: master")  # fmt: skip
    (d / "halb.yaml").write_text(text)
    code, out = invoke("write-config", "-c", str(d / "halb.yaml"))
    assert code == 0, out
    assert '    port: "7443"\n' in (d / "config-sample.yaml").read_text()


# --------------------------------------------------------------------------- Ansible


def _ansible_list(inventory: Path, tmp_path: Path) -> dict[str, object]:
    """`ansible-inventory --list` on the inventory alone (no group_vars beside it)."""
    if shutil.which("ansible-inventory") is None:
        pytest.skip("ansible-inventory is not installed")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(inventory, alone / inventory.name)
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_NOCOLOR": "1"}
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "True"
    r = subprocess.run(
        ["ansible-inventory", "-i", str(alone / inventory.name), "--list"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data: dict[str, object] = json.loads(r.stdout)
    return data


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inventory_reads_as_ansible_does(case: Case, tmp_path: Path) -> None:
    path = REALWORLD / case.name / case.inventory
    listed = _ansible_list(path, tmp_path)
    inv = load_inventory(path)
    meta = listed.pop("_meta")
    assert isinstance(meta, dict)
    hostvars = meta["hostvars"]
    assert set(hostvars) <= set(inv.hosts)
    for name, host in inv.hosts.items():
        assert dict(host.vars) == hostvars.get(name, {}), name
        hv = hostvars.get(name, {})
        if "ip" not in hv and "ansible_host" not in hv:
            # Ansible connects to the name itself: for an address, that is the host's ip.
            assert host.ssh_address == name
            assert host.ip == (name if name[0].isdigit() else None)
    groups = {g: v for g, v in listed.items() if isinstance(v, dict)}
    for g, body in groups.items():
        if g == "all":
            continue
        assert sorted(body.get("hosts", [])) == sorted(inv.groups[g].hosts), g
        assert sorted(body.get("children", [])) == sorted(inv.groups[g].children), g
    # Every non-empty group halb sees, Ansible lists too.
    for g, grp in inv.groups.items():
        if grp.hosts or grp.children:
            assert g in groups or g == "ungrouped", g
