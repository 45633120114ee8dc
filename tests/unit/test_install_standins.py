"""The install stage against stand-ins that behave as the real installers do (their prompts,
working directory and exit codes, from their source): KubeSphere 2.1's install.sh (the
lab's own, run here with its stages contacting nothing), KubeKey's kk and Kubespray's
ansible-playbook (tests/fixtures/standins)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from halb.installers import facts
from halb.installers.launch import LaunchPlan, plan_launch
from halb.installers.runner import RunLimits, RunResult, run_installer
from halb.installers.watch import Outcome
from halb.lab.standin import lay_kubesphere_installer

STANDINS = Path(__file__).parent.parent / "fixtures" / "standins"
LIMITS = RunLimits(tick=0.05, input_wait=2.0, stop_grace=3.0)
COMMON = "loadbalancer_apiserver:\n  address: 192.168.0.253\n  port: 6443\n"
INVENTORY = """[all]
master1 ansible_host=192.168.0.2 ip=192.168.0.2
node1 ansible_host=192.168.0.5 ip=192.168.0.5
[kube-master]
master1
[kube-node]
node1
"""


def run(plan: LaunchPlan, log: Path, limits: RunLimits = LIMITS) -> RunResult:
    con = Console(file=io.StringIO(), width=200, color_system=None)
    return run_installer(plan, log, con, limits=limits)


@pytest.fixture
def ks(tmp_path: Path) -> Path:
    """A KubeSphere 2.1 installer folder: conf/ and the stand-in's scripts/, offline."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "common.yaml").write_text(COMMON)
    (tmp_path / "conf" / "hosts.ini").write_text(INVENTORY)
    (tmp_path / "lab-offline").write_text("")  # stages 2 and 3 contact nothing
    lay_kubesphere_installer(tmp_path)
    return tmp_path


def ks_plan(root: Path) -> LaunchPlan:
    return plan_launch("kubesphere", root, Path("conf/common.yaml"), None)


def test_kubesphere_runs_to_the_end_answering_the_prerequisites(ks: Path) -> None:
    res = run(ks_plan(ks), ks / "i.log")
    v = res.verdict
    assert v.outcome is Outcome.SUCCEEDED, v
    assert [s.name for s in v.stages] == list(facts.KUBESPHERE_STAGES)
    assert v.console_url == "http://192.168.0.5:30880"  # printed, never contacted
    log = (ks / "i.log").read_text()
    assert "# halb answers 'yes' to the prerequisites question" in log
    assert "(yes/no) yes" in log  # the terminal echoed the answer after the prompt
    # Run from scripts/: install.sh's relative os/install.tmp and os/precheck.py worked.
    assert (ks / "scripts" / "os" / "install.tmp").read_text() == "init_env successful\n"
    assert (ks / "scripts" / "os" / "precheck.done").is_file()


def test_kubesphere_menu_is_answered_multi_node(ks: Path) -> None:
    plan = LaunchPlan(("bash", "./install.sh"), ks / "scripts", facts.KUBESPHERE_21)
    res = run(plan, ks / "m.log")
    assert res.verdict.ok, res.verdict
    assert "# halb answers '2' to the installer menu" in (ks / "m.log").read_text()


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_kubesphere_failed_stage_exits_0_and_is_caught(ks: Path, stage: int) -> None:
    (ks / "lab-fail-stage").write_text(f"{stage}\n")
    res = run(ks_plan(ks), ks / "f.log")
    v = res.verdict
    assert v.exit_code == 0  # install.sh's bare `exit` after failed!
    assert v.outcome is Outcome.FAILED
    assert v.stage == f"{stage}/3 {facts.KUBESPHERE_STAGES[stage - 1]}"
    assert "fatal: [master1]: FAILED!" in v.why and f"fail stage {stage}" in v.why
    assert len(v.stages) == stage


def test_kubesphere_that_never_reports_running_is_a_failure(ks: Path) -> None:
    (ks / "lab-no-banner").write_text("")
    (ks / "lab-ks-wait").write_text("1\n")
    v = run(ks_plan(ks), ks / "n.log").verdict
    assert v.exit_code == 0 and v.outcome is Outcome.FAILED
    assert "Welcome" in v.why and v.stage == "3/3 Installing KubeSphere"


def test_a_prompt_halb_cannot_answer_stops_within_a_bounded_time(ks: Path) -> None:
    (ks / "lab-extra-prompt").write_text("")
    start = time.monotonic()
    res = run(ks_plan(ks), ks / "p.log")
    took = time.monotonic() - start
    v = res.verdict
    assert v.outcome is Outcome.STOPPED
    assert "'Please enter the password of your private registry:'" in v.why
    assert took < LIMITS.input_wait + LIMITS.stop_grace + 10  # bounded, with room for load
    assert "halb stops the installer" in (ks / "p.log").read_text()


def test_a_yes_no_loop_that_rejects_the_answer_is_stopped(tmp_path: Path) -> None:
    loop = (
        'while true; do read -p "Please ensure that your environment has met the above '
        'requirements  (yes/no) " a; [ "$a" = sure ] && break; done'
    )
    plan = LaunchPlan(("bash", "-c", loop), tmp_path, facts.KUBESPHERE_21)
    start = time.monotonic()
    v = run(plan, tmp_path / "y.log").verdict
    assert v.outcome is Outcome.STOPPED and "4 times" in v.why
    assert time.monotonic() - start < 15


@pytest.fixture
def world_readable_ks() -> Iterator[Path]:
    # The non-root run must read the scripts: a folder outside root's private tmp.
    d = Path(tempfile.mkdtemp(prefix="halb-ks-"))
    d.chmod(0o755)
    try:
        (d / "conf").mkdir()
        (d / "conf" / "common.yaml").write_text(COMMON)
        (d / "conf" / "hosts.ini").write_text(INVENTORY)
        lay_kubesphere_installer(d)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_kubesphere_refuses_a_non_root_user_with_exit_0_and_halb_fails(
    world_readable_ks: Path, tmp_path: Path
) -> None:
    ks = world_readable_ks
    drop = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    plan = LaunchPlan(
        (*drop, "bash", "./install.sh", "multi-node"), ks / "scripts", facts.KUBESPHERE_21
    )
    v = run(plan, tmp_path / "r.log").verdict
    assert v.exit_code == 0
    assert v.outcome is Outcome.FAILED
    assert "Please install KubeSphere using the root user !" in v.why


def kk_dir(tmp_path: Path) -> Path:
    shutil.copy(STANDINS / "kk", tmp_path / "kk")
    (tmp_path / "config.yaml").write_text(
        "apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\nspec: {}\n"
    )
    return tmp_path


def test_kubekey_runs_with_yes_and_succeeds(tmp_path: Path) -> None:
    d = kk_dir(tmp_path)
    plan = plan_launch("kubekey", d, Path("config.yaml"), None)
    assert plan.argv[0] == "./kk" and "--yes" in plan.argv
    v = run(plan, d / "k.log").verdict
    assert v.ok, v
    assert "Greetings" in [s.name for s in v.stages]


def test_kubekey_asking_anyway_is_answered(tmp_path: Path) -> None:
    d = kk_dir(tmp_path)
    (d / "kk-ignore-yes").write_text("")
    v = run(plan_launch("kubekey", d, Path("config.yaml"), None), d / "k.log").verdict
    assert v.ok, v
    assert "# halb answers 'yes' to KubeKey's confirmation" in (d / "k.log").read_text()


def test_kubekey_failure_names_the_module_and_the_line(tmp_path: Path) -> None:
    d = kk_dir(tmp_path)
    (d / "kk-fail").write_text("InitKubernetes")
    v = run(plan_launch("kubekey", d, Path("config.yaml"), None), d / "k.log").verdict
    assert v.outcome is Outcome.FAILED and v.exit_code == 1
    assert v.stage == "Init cluster using kubeadm"
    assert "kubeadm init" in v.why


@pytest.fixture
def kubespray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inv = tmp_path / "kubespray" / "inventory" / "c"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yaml").write_text("all: {}\n")
    (tmp_path / "kubespray" / "cluster.yml").write_text("[]\n")
    monkeypatch.setenv("PATH", f"{STANDINS}:{os.environ['PATH']}")
    return tmp_path


def ks_spray_plan(root: Path) -> LaunchPlan:
    return plan_launch(
        "kubespray", root, Path("kubespray/inventory/c/group_vars/all/all.yml"), None
    )


def test_kubespray_recap_decides(kubespray: Path) -> None:
    v = run(ks_spray_plan(kubespray), kubespray / "s.log").verdict
    assert v.ok, v
    assert [s.name for s in v.stages][:2] == ["Check Ansible version", "Install etcd"]
    (kubespray / "kubespray" / "ansible-fail").write_text("")
    v = run(ks_spray_plan(kubespray), kubespray / "f.log").verdict
    assert v.outcome is Outcome.FAILED and v.exit_code == 2
    assert "etcd did not start" in v.why and v.stage == "Install etcd"


def test_kubespray_become_password_prompt_stops_at_once(kubespray: Path) -> None:
    (kubespray / "kubespray" / "ansible-become-prompt").write_text("")
    v = run(ks_spray_plan(kubespray), kubespray / "b.log").verdict
    assert v.outcome is Outcome.STOPPED
    assert "become (sudo) password" in v.why and "ansible_become_pass" in v.advice


SPEC = """cluster: standin
inventory: hosts.ini
lb_hosts: [lb1, lb2]
vips:
  internal: {address: 192.168.0.253, interface: eth0}
frontends:
  apiserver: {vip: internal, port: 6443, backends: kube-master, backend_port: 6443}
installer: {kind: command, command: %s}
"""
HOSTS = """[all]
lb1 ansible_host=192.168.0.11 ip=192.168.0.11
lb2 ansible_host=192.168.0.12 ip=192.168.0.12
master1 ansible_host=192.168.0.2 ip=192.168.0.2
[lb]
lb1
lb2
[kube-master]
master1
[etcd]
master1
[kube-node]
master1
[k8s-cluster:children]
kube-master
kube-node
"""


def halb(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "halb"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_halb_install_exit_codes_and_json(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(HOSTS)
    (tmp_path / "halb.yaml").write_text(SPEC % "'echo installing; exit 4'")
    p = halb("install", "--json", cwd=tmp_path)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    import json

    doc = json.loads(out)
    assert doc["outcome"] == "failed" and doc["exit_code"] == 4 and doc["ok"] is False
    assert stat.S_IMODE(Path(doc["log"]).stat().st_mode) == 0o600
    (tmp_path / "halb.yaml").write_text(SPEC % "'echo installed'")
    p = halb("install", cwd=tmp_path)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "install succeeded" in out


def test_ctrl_c_stops_the_installer_and_its_children(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(HOSTS)
    # A child in the background (bash makes it ignore SIGINT) and one in the foreground.
    cmd = "'sleep 300 & echo $! > child.pid; sleep 300'"
    (tmp_path / "halb.yaml").write_text(SPEC % cmd)
    p = halb("install", cwd=tmp_path)
    pidfile = tmp_path / "child.pid"
    deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
    while not (pidfile.is_file() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the installer never started"
        time.sleep(0.1)
    child = int(pidfile.read_text())
    start = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    took = time.monotonic() - start
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err
    assert took < 30  # SIGINT, then SIGTERM 10 s later at the latest
    assert gone(child, within=5.0)


def gone(pid: int, within: float) -> bool:
    """Dead: no such process, or a zombie its new parent has not reaped yet."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_the_stand_in_spins_at_end_of_input_as_the_real_script_does(ks: Path) -> None:
    # What halb did before: "2\n" on a pipe, then end of input. `read -p` shows no prompt
    # (stdin is not a terminal) and the yes/no loop re-reads EOF forever.
    with pytest.raises(subprocess.TimeoutExpired) as spun:
        subprocess.run(
            ["bash", "./install.sh"],
            cwd=ks / "scripts",
            input=b"2\n",
            capture_output=True,
            timeout=3,
        )
    out = spun.value.stdout or b""
    assert b"Please ensure that your environment" not in out  # no prompt on a pipe
    assert b"1. Initiating Environment" not in out
