"""The lab itself: real sshd, fake apiserver/console, isolation, and a clean teardown."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from halb import lab as labmod
from halb.errors import InputError
from halb.lab import Lab, build, netns, teardown

pytestmark = pytest.mark.lab
LabFactory = Callable[..., Lab]


def lab_mounts(path: Path) -> list[str]:
    text = Path("/proc/self/mountinfo").read_text()
    return [line for line in text.splitlines() if str(path) in line]


def ssh_cmd(lab: Lab, host: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(lab.key),
        "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "BatchMode=yes",
        f"root@{lab.address(host)}", "hostname",
    ]  # fmt: skip


def curl(lab: Lab, url: str) -> tuple[str, str]:
    cp = lab.run("taskbox", ["curl", "-sk", "-m", "5", "-w", "\n%{http_code}", url], check=True)
    body, _, code = cp.stdout.rpartition("\n")
    return code, body


def test_key_login_from_taskbox_lands_on_that_host(lab: Lab) -> None:
    for host in ("lb1", "master2"):
        cp = lab.run("taskbox", ssh_cmd(lab, host), timeout=20)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.strip() == host


def test_password_host_takes_the_password_not_the_key(lab: Lab) -> None:
    host = "lb2"
    assert host in lab.password_hosts
    cp = lab.run("taskbox", ssh_cmd(lab, host), timeout=20)
    assert cp.returncode == 255  # the key alone is refused here
    argv = [
        "sshpass", "-e", "ssh", "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "PubkeyAuthentication=no",
        f"root@{lab.address(host)}", "hostname; head -c 5 /etc/shadow",
    ]  # fmt: skip
    assert lab.password not in " ".join(argv)
    cp = lab.run("taskbox", argv, env={"SSHPASS": lab.password}, timeout=20)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == [host, "root:"]
    wrong = lab.run("taskbox", argv, env={"SSHPASS": lab.password + "x"}, timeout=20)
    assert wrong.returncode != 0


def test_password_only_in_files_mode_600(lab: Lab) -> None:
    for path in lab.dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if lab.password in text:
            assert path.name in ("hosts.ini", "lab.json"), path
            assert path.stat().st_mode & 0o077 == 0, path
    for p in psutil.process_iter(["cmdline"]):
        assert lab.password not in " ".join(p.info["cmdline"] or [])
    assert lab.key.stat().st_mode & 0o777 == 0o600


def test_apiserver_readyz_follows_the_control_file(lab: Lab) -> None:
    url = f"https://{lab.address('master1')}:6443/readyz"
    assert curl(lab, url) == ("200", "ok")
    try:
        lab.set_readyz("master1", 500)
        assert curl(lab, url)[0] == "500"
        assert curl(lab, f"https://{lab.address('master2')}:6443/readyz")[0] == "200"
        lab.set_readyz("master1", 401)
        assert curl(lab, url)[0] == "401"
    finally:
        lab.set_readyz("master1", None)
    assert curl(lab, url) == ("200", "ok")
    for path in ("/livez", "/healthz"):
        assert curl(lab, f"https://{lab.address('master2')}:6443{path}") == ("200", "ok")


def test_console_names_its_node(lab: Lab) -> None:
    for node in lab.nodes:
        code, body = curl(lab, f"http://{lab.address(node)}:30880/")
        assert (code, body) == ("200", f"console {node}\n")


def test_hosts_have_their_own_files_and_names(lab: Lab) -> None:
    marker = "# written in lb1 only\n"
    cp = lab.run("lb1", ["sh", "-c", f"printf '{marker}' > /etc/haproxy/lab-marker; hostname"])
    assert cp.returncode == 0 and cp.stdout.strip() == "lb1"
    try:
        assert lab.run("lb1", ["cat", "/etc/haproxy/lab-marker"]).stdout == marker
        assert lab.run("lb2", ["test", "-e", "/etc/haproxy/lab-marker"]).returncode == 1
        assert not Path("/etc/haproxy/lab-marker").exists()
        assert lab.run("lb2", ["hostname"]).stdout.strip() == "lb2"
        # a stock config still finds its error files
        assert lab.run("lb2", ["test", "-f", "/etc/haproxy/errors/503.http"]).returncode == 0
        assert lab.run("lb2", ["ls", "/sys/class/net"]).stdout.split() == ["eth0", "lo"]
    finally:
        (lab.host_dir("lb1") / "etc-haproxy" / "lab-marker").unlink(missing_ok=True)


# os.path.isfile: False, not PermissionError, when collected by a user that is not root
@pytest.mark.skipif(not os.path.isfile("/root/.bashrc"), reason="no /root/.bashrc to hide")
def test_root_logins_read_the_default_bashrc_not_the_machines(lab: Lab) -> None:
    skel = Path("/etc/skel/.bashrc")
    want = skel.read_text() if skel.is_file() else ""
    for h in ("lb1", "master1", "node1"):
        assert lab.run(h, ["cat", "/root/.bashrc"]).stdout == want, h
    # over SSH too, the way halb and Ansible reach it
    cp = lab.run("taskbox", [*lab.ssh_argv("node2"), "cat /root/.bashrc"])
    assert cp.returncode == 0 and cp.stdout == want


def test_root_namespace_has_nothing_in_the_lab_range(lab: Lab) -> None:
    prefix = f"10.250.{lab.plan.octet}."
    assert not [a for a in netns.root_addresses() if a.startswith(prefix)]
    # ... and the lab range is reachable only from inside
    cp = lab.run("taskbox", ["ping", "-c1", "-W1", lab.address("node1")])
    if shutil.which("ping"):
        assert cp.returncode == 0


def test_status_reports_daemons_and_vip_holder(lab: Lab) -> None:
    vip = lab.vip_internal
    lab.run("lb2", ["ip", "addr", "add", f"{vip}/32", "dev", "eth0"], check=True)
    try:
        (report,) = labmod.status(lab.name)
        hosts = {h["host"]: h for h in report["hosts"]}
        assert hosts["lb1"]["daemons"] == ["sshd"]
        assert hosts["master1"]["daemons"] == ["apiserver", "console", "sshd"]
        assert hosts["node2"]["daemons"] == ["console", "sshd"]
        vips = {v["address"]: v for v in report["vips"]}
        assert vips[vip]["holders"] == ["lb2"] and vips[vip]["role"] == "internal"
        assert vips[lab.vip_external]["holders"] == []
    finally:
        lab.run("lb2", ["ip", "addr", "del", f"{vip}/32", "dev", "eth0"])


def test_cli_exec_passes_output_and_exit_status(lab: Lab) -> None:
    halb = shutil.which("halb")
    if halb is None:
        pytest.skip("halb is not on PATH")
    cmd = [halb, "lab", "exec", "--name", lab.name, "--dir", str(lab.dir), "--host", "node1",
           "--", "sh", "-c", "hostname; exit 3"]  # fmt: skip
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert (cp.returncode, cp.stdout) == (3, "node1\n")


def test_daemons_hold_no_pipe_of_ours(lab: Lab) -> None:
    for host in lab.masters + lab.nodes:
        for pid in netns.netns_pids(lab.plan.host(host).netns):
            fds = {n: os.readlink(f"/proc/{pid}/fd/{n}") for n in ("0", "1", "2")}
            assert fds["0"] == "/dev/null"
            assert fds["1"].startswith(str(lab.host_dir(host) / "lab-logs")), fds
            assert psutil.Process(pid).ppid() != os.getpid()


def test_second_lab_with_same_name_or_range_is_refused(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="already exists"):
        labmod.up(lab.name, tmp_path / "a", 1, 1, 0)
    with pytest.raises(InputError, match="already used by lab"):
        labmod.up(labmod.pick_name("c"), tmp_path / "b", 1, 1, 0, octet=lab.plan.octet)
    assert lab.run("taskbox", ssh_cmd(lab, "lb1"), timeout=20).stdout.strip() == "lb1"


def test_down_leaves_nothing_and_is_idempotent(lab_factory: LabFactory) -> None:
    small = lab_factory(lbs=1, masters=1, nodes=1)
    nss = [h.netns for h in small.hosts.values()] + [small.plan.switch_netns]
    pids = {p for ns in nss for p in netns.netns_pids(ns)}
    assert len(pids) >= 5  # 3 sshd, apiserver, console
    assert lab_mounts(small.dir)
    labmod.down(small.name, small.dir)
    assert not set(nss) & set(netns.list_netns())
    assert not [p for p in pids if netns.pid_alive(p)]
    pattern = f"halb.lab.fakeapi .*{small.address('master1')}:6443"
    assert subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 1
    assert not lab_mounts(small.dir)
    assert not small.dir.exists()
    assert teardown.down(small.name, small.dir) == []  # twice is fine


def test_failed_up_removes_what_it_built(
    lab_factory: LabFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A daemon that never listens cannot be caused for real without breaking sshd itself.
    monkeypatch.setattr(build, "READY_TIMEOUT", 0.2)
    monkeypatch.setattr(build, "expected_ports", lambda p, h: {(h.address, 9)})
    name = labmod.pick_name("f")
    with pytest.raises(netns.LabError, match="does not listen"):
        labmod.up(name, tmp_path / "lab", 1, 1, 0)
    assert not [ns for ns in netns.list_netns() if ns.startswith(f"halb-{name}-")]
    assert not lab_mounts(tmp_path / "lab")
    assert not (tmp_path / "lab").exists()
