"""`halb export ansible` on a real lab: plain ansible-playbook over the lab's real sshd.

ansible-playbook runs in the taskbox against both LB hosts, lb1 through sudo with its
password (ansible_become_pass from the lab inventory). The cluster uses VRRP PASS auth
from a password file, so three secrets are in play; none may be in the export, in the
output, or in any process's argv. After the play, the LB hosts hold exactly the bytes halb
renders, `halb status` is healthy, a second run changes nothing and `halb deploy` agrees.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from halb.lab import Lab
from halb.render import render_cluster
from halb.spec import load_cluster

pytestmark = pytest.mark.lab

VRRP_PASSWORD = "Kp4vrrp9"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# root's PATH on this machine may lead Ansible's interpreter discovery to a pyenv shim
PYTHON = ["-e", "ansible_python_interpreter=/usr/bin/python3"]
OUTPUTS: list[str] = []


def run(lab: Lab, argv: list[str], cwd: Path | None = None, timeout: float = 300) -> Any:
    if cwd is not None:
        argv = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), *argv]
    r = lab.run("taskbox", argv, timeout=timeout)
    OUTPUTS.append(r.stdout + r.stderr)
    return r


def playbook(lab: Lab, dest: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    r = run(lab, ["ansible-playbook", "site.yml", *PYTHON, *extra], cwd=dest)
    recap = {m[0]: tuple(int(x) for x in m[1:]) for m in RECAP.findall(r.stdout)}
    return r, recap


def export(lab: Lab, spec: Path, dest: Path) -> None:
    r = run(lab, ["halb", "export", "ansible", "-c", str(spec), str(dest)])
    assert r.returncode == 0, r.stderr


def on_target(lab: Lab, host: str, paths: list[str]) -> dict[str, tuple[str, str]]:
    """path -> (sha256, "owner group mode") as the host sees it."""
    script = 'for f; do printf "%s %s\\n" "$(sha256sum < "$f" | cut -d" " -f1)" ' \
             '"$(stat -c "%U %G %a" "$f")"; done'  # fmt: skip
    r = lab.run(host, ["sh", "-c", script, "sh", *paths])
    assert r.returncode == 0, r.stderr
    lines = [ln.split(maxsplit=1) for ln in r.stdout.splitlines()]
    return {p: (ln[0], ln[1]) for p, ln in zip(paths, lines, strict=True)}


def rendered(spec: Path) -> dict[str, dict[str, tuple[str, str]]]:
    return {
        host: {
            p: (hashlib.sha256(f.content.encode()).hexdigest(), f"root root {f.mode:o}")
            for p, f in files.items()
        }
        for host, files in render_cluster(load_cluster(spec)).items()
    }


def master_pid(lab: Lab, lb: str) -> int:
    return int(lab.run(lb, ["cat", "/run/haproxy.pid"]).stdout.split()[0])


def status(lab: Lab, spec: Path) -> dict[str, Any]:
    r = run(lab, ["halb", "status", "-c", str(spec), "--json"], timeout=120)
    doc: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], r.stdout + r.stderr
    return doc


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("export")
    pw = d / "vrrp.pass"
    pw.write_text(VRRP_PASSWORD + "\n")
    pw.chmod(0o600)
    data = yaml.safe_load(lab.spec.read_text())
    data["inventory"] = str(lab.inventory)
    data["vrrp"] = {**data.get("vrrp", {}), "auth": {"password_file": str(pw)}}
    spec = d / "halb.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return {"spec": spec, "dest": d / "ansible", "secrets": [*lab.secrets, VRRP_PASSWORD]}


@pytest.fixture(scope="module")
def first(lab: Lab, setup: dict[str, Any], ps_watch: Any) -> dict[str, Any]:
    export(lab, setup["spec"], setup["dest"])
    with ps_watch() as ps:
        r, recap = playbook(lab, setup["dest"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    return {"recap": recap, "ps": ps.snapshots}


def test_no_secret_in_the_export(setup: dict[str, Any], first: dict[str, Any]) -> None:
    files = [p for p in setup["dest"].rglob("*") if p.is_file()]
    assert len(files) > 10
    for p in files:
        text = p.read_text()
        for s in setup["secrets"]:
            assert s not in text, p


def test_first_run_deploys_both_hosts_with_the_rendered_bytes(
    lab: Lab, setup: dict[str, Any], first: dict[str, Any]
) -> None:
    assert set(first["recap"]) == set(lab.lbs)
    for host, (_ok, changed, unreachable, failed) in first["recap"].items():
        assert (unreachable, failed) == (0, 0) and changed > 0, host
    for host, want in rendered(setup["spec"]).items():
        assert on_target(lab, host, list(want)) == want, host
    kconf = lab.run("lb1", ["cat", "/etc/keepalived/keepalived.conf"]).stdout
    assert f"auth_pass {VRRP_PASSWORD}" in kconf


def test_status_is_healthy_and_halb_deploy_sees_nothing_to_do(
    lab: Lab, setup: dict[str, Any], first: dict[str, Any]
) -> None:
    doc = status(lab, setup["spec"])
    assert all(len(v["holders"]) == 1 for v in doc["vips"])
    r = run(lab, ["halb", "deploy", "-c", str(setup["spec"]), "--json"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert {h["status"] for h in json.loads(r.stdout)["hosts"].values()} == {"unchanged"}


def test_second_run_changes_nothing(lab: Lab, setup: dict[str, Any], first: dict[str, Any]) -> None:
    pids = {lb: master_pid(lab, lb) for lb in lab.lbs}
    r, recap = playbook(lab, setup["dest"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert {h: c[1] for h, c in recap.items()} == dict.fromkeys(lab.lbs, 0)
    assert {lb: master_pid(lab, lb) for lb in lab.lbs} == pids


def test_check_diff_then_a_change_reloads_without_moving_the_vip(
    lab: Lab, setup: dict[str, Any], first: dict[str, Any]
) -> None:
    spec: Path = setup["spec"]
    data = yaml.safe_load(spec.read_text())
    data["health"] = {**data.get("health", {}), "inter": "3s"}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    export(lab, spec, setup["dest"])
    before = {lb: on_target(lab, lb, ["/etc/haproxy/haproxy.cfg"]) for lb in lab.lbs}
    holders = status(lab, spec)["vips"]
    pids = {lb: master_pid(lab, lb) for lb in lab.lbs}

    r, recap = playbook(lab, setup["dest"], "--check", "--diff")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "inter 3s" in r.stdout and all(c[1] > 0 for c in recap.values())
    assert {lb: on_target(lab, lb, ["/etc/haproxy/haproxy.cfg"]) for lb in lab.lbs} == before

    backups = "ls /etc/haproxy/haproxy.cfg.*~ | wc -l"
    n_backups = int(lab.run("lb1", ["sh", "-c", backups]).stdout)
    r, recap = playbook(lab, setup["dest"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert "halb reload haproxy" in r.stdout and "halb reload keepalived" not in r.stdout
    for host, want in rendered(spec).items():
        assert on_target(lab, host, list(want)) == want, host
    # reloaded, not restarted: the same HAProxy masters, the VIPs where they were
    assert {lb: master_pid(lab, lb) for lb in lab.lbs} == pids
    assert status(lab, spec)["vips"] == holders
    assert int(lab.run("lb1", ["sh", "-c", backups]).stdout) == n_backups + 1


def test_no_secret_in_output_or_argv(setup: dict[str, Any], first: dict[str, Any]) -> None:
    seen = "\n".join(OUTPUTS + first["ps"])
    assert "ansible-playbook" in seen
    for s in setup["secrets"]:
        assert s not in seen
