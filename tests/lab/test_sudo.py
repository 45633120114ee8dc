"""The become-password path for real: lb1 logs in as `halbops` and becomes root with sudo.

lb1's sshd takes halbops by password only (the lab key is not authorised for it), and its
private sudoers drop-in lets halbops run anything after giving its own password (no
NOPASSWD). halb deploys, reports status and runs preflight there through
`sudo -k -S -p ''` with the password on stdin. The secrets must show up nowhere: not in
any process's argv while halb runs, not in any output, not in lb1's logs or files.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from halb.lab import Lab, netns
from halb.render import render_cluster
from halb.spec import load_cluster

pytestmark = pytest.mark.lab

USER = "halbops"
HOST = "lb1"
# Everything any command printed in this module; no lab secret may be in any of it.
OUTPUTS: list[str] = []


def run(
    lab: Lab, host: str, argv: list[str], timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    r = lab.run(host, argv, timeout=timeout, **kw)
    OUTPUTS.append(r.stdout + r.stderr)
    return r


def halb(lab: Lab, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run(lab, "taskbox", ["halb", *args], timeout=timeout)


def ssh_as_user(lab: Lab, *, password: bool) -> list[str]:
    """ssh from the taskbox to lb1 as halbops, by password (sshpass -e) or by the lab key."""
    argv = ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"]  # fmt: skip
    if password:
        return ["sshpass", "-e", *argv, "-o", "PubkeyAuthentication=no",
                f"{USER}@{lab.address(HOST)}"]  # fmt: skip
    return [*argv, "-i", str(lab.key), "-o", "BatchMode=yes", f"{USER}@{lab.address(HOST)}"]


def rendered_files(lab: Lab, spec: Path | None = None) -> dict[str, tuple[str, int]]:
    """lb1's rendered files: path -> (sha256 of the content, mode)."""
    files = render_cluster(load_cluster(spec or lab.spec))[HOST]
    return {
        path: (hashlib.sha256(f.content.encode()).hexdigest(), f.mode) for path, f in files.items()
    }


def on_target(lab: Lab, host: str, paths: list[str]) -> dict[str, str]:
    """path -> "sha256 owner group mode inode mtime" as the host sees it."""
    script = 'for f; do printf "%s %s\\n" "$(sha256sum < "$f" | cut -d" " -f1)" ' \
             '"$(stat -c "%U %G %a %i %Y" "$f")"; done'  # fmt: skip
    r = run(lab, host, ["sh", "-c", script, "sh", *paths])
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == len(paths), r.stderr
    return dict(zip(paths, lines, strict=True))


def pid_file(lab: Lab, name: str, host: str = HOST) -> int:
    return int(run(lab, host, ["cat", f"/run/{name}.pid"]).stdout.split()[0])


def uids(pid: int) -> tuple[int, int, int]:
    u = psutil.Process(pid).uids()
    return (u.real, u.effective, u.saved)


@pytest.fixture(scope="module")
def first(lab: Lab, ps_watch: Any) -> dict[str, Any]:
    """The first deploy onto fresh LB hosts, with a `ps` watch running throughout."""
    with ps_watch() as ps:
        t0 = time.monotonic()
        r = halb(lab, "deploy", "-c", str(lab.spec), "--json")
        seconds = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    return {"doc": json.loads(r.stdout), "err": r.stderr, "seconds": seconds, "ps": ps.snapshots}


def wrong_copy(lab: Lab, tmp_path: Path, become: str | None) -> Path:
    """halb.yaml + hosts.ini copies in tmp_path for the same lab, with a real change (so a
    deploy that got through would rewrite files) and lb1's become password replaced."""
    inv = lab.inventory.read_text()
    line = re.compile(rf"^({HOST} .*?) ansible_become_pass=\S+", re.M)
    assert line.search(inv), inv
    extra = "" if become is None else f" ansible_become_pass={become}"
    (tmp_path / "hosts.ini").write_text(line.sub(rf"\g<1>{extra}", inv))
    (tmp_path / "hosts.ini").chmod(0o600)
    data = yaml.safe_load(lab.spec.read_text())
    data["inventory"] = str(tmp_path / "hosts.ini")
    data["health"] = {**data.get("health", {}), "inter": "9s"}
    spec = tmp_path / "halb.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


# -------------------------------------------------------------------------------- tests


def test_lb1_logs_in_as_halbops_by_password_only(lab: Lab) -> None:
    assert lab.sudo_hosts == [HOST] and HOST not in lab.password_hosts
    assert len(set(lab.secrets)) == 2 and lab.sudo_password in lab.secrets
    line = next(ln for ln in lab.inventory.read_text().splitlines() if ln.startswith(f"{HOST} "))
    pw = lab.sudo_password
    assert f" ansible_user={USER} ansible_ssh_pass={pw} ansible_become_pass={pw}" in line
    for f in (lab.inventory, lab.dir / "lab.json"):
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert json.loads((lab.dir / "lab.json").read_text())["sudo_password"] == pw

    # the lab key is not authorised for halbops: only the password gets in
    r = run(lab, "taskbox", [*ssh_as_user(lab, password=False), "id -un"], timeout=20)
    assert r.returncode == 255 and "Permission denied" in r.stderr, r.stderr
    cmd = "id -un; pwd; sudo -n true; echo sudo-n=$?"
    r = run(lab, "taskbox", [*ssh_as_user(lab, password=True), cmd], env={"SSHPASS": pw})
    assert r.returncode == 0, r.stderr
    # a password is required every time: no NOPASSWD rule
    assert r.stdout.splitlines() == [USER, f"/home/{USER}", "sudo-n=1"], r.stdout
    assert "a password is required" in r.stderr
    wrong = run(lab, "taskbox", [*ssh_as_user(lab, password=True), "true"],
                env={"SSHPASS": pw + "x"}, timeout=20)  # fmt: skip
    assert wrong.returncode != 0

    # sudo trusts the private files: root-owned and 0440, with the one rule
    r = run(lab, HOST, ["stat", "-c", "%U %G %a", "/etc/sudoers.d", f"/etc/sudoers.d/{USER}"])
    assert r.stdout.splitlines() == ["root root 755", "root root 440"], r.stdout
    rules = run(lab, HOST, ["cat", f"/etc/sudoers.d/{USER}"]).stdout
    assert [ln for ln in rules.splitlines() if not ln.startswith("#")] == [
        f"{USER} ALL=(ALL:ALL) ALL"
    ]
    assert run(lab, HOST, ["visudo", "-c", "-q"]).returncode == 0
    # ... and only inside lb1: the machine and the other hosts have no halbops
    for path in ("/etc/passwd", "/etc/group", "/etc/shadow"):
        assert f"\n{USER}:" not in "\n" + Path(path).read_text(), path
    assert not Path("/etc/sudoers.d", USER).exists()
    assert run(lab, "lb2", ["id", USER]).returncode != 0
    assert run(lab, HOST, ["id", "-u", USER]).stdout.strip().isdigit()


def test_deploy_goes_through_sudo_and_serves_the_vips(lab: Lab, first: dict[str, Any]) -> None:
    doc = first["doc"]
    assert doc["ok"] and doc["hosts"][HOST]["status"] == "changed", doc["hosts"][HOST]
    assert f"{HOST}: done in" in first["err"]
    # halb logged in as halbops and ran its commands under `sudo -k -S -p ''`
    assert any(f"sshd: {USER}" in snap for snap in first["ps"])
    assert any("sudo -k -S -p  -- sh -c" in snap for snap in first["ps"])

    # every file is root's, with the rendered content and mode (keepalived.conf 0600)
    rendered = rendered_files(lab)
    assert rendered["/etc/keepalived/keepalived.conf"][1] == 0o600
    seen = on_target(lab, HOST, list(rendered))
    for path, (sha, mode) in rendered.items():
        got_sha, owner, group, got_mode = seen[path].split()[:4]
        assert (got_sha, owner, group, int(got_mode, 8)) == (sha, "root", "root", mode), path

    # HAProxy's master and keepalived run as root in lb1 (halbops could not have started them)
    in_lb1 = set(netns.netns_pids(lab.plan.host(HOST).netns))
    for name in ("haproxy", "keepalived"):
        pid = pid_file(lab, name)
        assert pid in in_lb1, name
        assert uids(pid) == (0, 0, 0), name
        assert psutil.Process(pid).name() == name

    for _ in range(3):
        r = run(lab, "taskbox", ["curl", "-s", "-m", "3", "-w", " %{http_code}",
                                 f"http://{lab.vip_external}:30880/"])  # fmt: skip
        assert r.stdout.startswith("console ") and r.stdout.endswith(" 200"), r
    r = run(lab, "taskbox", ["curl", "-sk", "-m", "3", f"https://{lab.vip_internal}:6443/readyz"])
    assert r.stdout == "ok", r


@pytest.mark.parametrize(
    ("become", "why"),
    [
        ("Wr0ng-Bec0me-pw", "the sudo password (ansible_become_pass) is wrong"),
        (None, "a password is required; set ansible_become_pass"),
    ],
    ids=["wrong", "missing"],
)
def test_refused_sudo_fails_naming_lb1_and_changes_nothing(
    lab: Lab, first: dict[str, Any], tmp_path: Path, become: str | None, why: str
) -> None:
    spec = wrong_copy(lab, tmp_path, become)
    paths = sorted(rendered_files(lab))
    assert rendered_files(lab, spec) != rendered_files(lab)  # a deploy would rewrite files
    before = {lb: on_target(lab, lb, paths) for lb in lab.lbs}
    pids = {lb: pid_file(lab, "haproxy", lb) for lb in lab.lbs}
    t0 = time.monotonic()
    r = halb(lab, "deploy", "-c", str(spec), "--json")
    seconds = time.monotonic() - t0
    assert r.returncode == 1, (r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    assert not doc["ok"]
    message = f"{HOST}: sudo as {USER} refused to run commands as root"
    assert message in doc["error"] and why in doc["error"], doc
    assert f"error: {message}" in r.stderr
    assert "Traceback" not in r.stderr
    for secret in (*lab.secrets, *([become] if become else [])):
        assert secret not in r.stdout + r.stderr
    assert seconds < 30, seconds  # refused at once, not after a timeout
    # nothing changed anywhere: same content, mode, inode and mtime; same HAProxy
    for lb in lab.lbs:
        assert on_target(lab, lb, paths) == before[lb], lb
        assert pid_file(lab, "haproxy", lb) == pids[lb]


def test_status_and_preflight_through_sudo(lab: Lab, first: dict[str, Any]) -> None:
    r = halb(lab, "status", "-c", str(lab.spec), "--json")
    assert r.returncode == 0, r.stderr
    hosts = {h["host"]: h for h in json.loads(r.stdout)["hosts"]}
    lb1 = hosts[HOST]
    assert lb1["reachable"] and lb1["error"] is None, lb1
    assert lb1["haproxy_up"] and lb1["keepalived_up"], lb1
    assert lb1["haproxy_pid"] == pid_file(lab, "haproxy")

    r = halb(lab, "preflight", "-c", str(lab.spec), "--json")
    checks = [c for c in json.loads(r.stdout)["checks"] if c["host"] == HOST]
    sudo = [c for c in checks if c["check"] == "sudo"]
    assert [(c["level"], c["message"]) for c in sudo] == [("ok", "root: sudo with password")]
    assert not [c for c in checks if c["level"] == "fail"], checks
    assert r.returncode == 0, r.stdout


def test_no_lab_secret_in_argv_output_logs_or_files(lab: Lab, first: dict[str, Any]) -> None:
    """Runs last: every output of this module, the deploy's ps snapshots, lb1's logs."""
    secrets = lab.secrets
    assert len(secrets) == 2
    assert any("sshpass -e ssh" in snap for snap in first["ps"])  # ps saw the ssh children
    assert len(first["ps"]) >= 5, len(first["ps"])
    for snap in first["ps"]:
        for s in secrets:
            assert s not in snap
    assert OUTPUTS
    for text in OUTPUTS:
        for s in secrets:
            assert s not in text
    for s in secrets:
        # lb1 as it sees itself: the machine's logs plus its own /var/log/halb, what halb
        # wrote and ran there, halbops' home
        r = lab.run(
            HOST,
            ["grep", "-rlIF", "-D", "skip", "--", s, "/var/log", "/var/lib/halb", "/etc/haproxy",
             "/etc/keepalived", "/etc/sysctl.d", "/run", f"/home/{USER}"],
        )  # fmt: skip
        assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
        # halb's own files on the taskbox: ssh control dirs and deploy locks
        r = lab.run("taskbox", ["sh", "-c", 'grep -rlF -- "$1" /tmp/halb-* 2>/dev/null', "sh", s])
        assert r.stdout == ""
    # in the lab dir only the inventory and the state file hold them, both mode 600
    for path in lab.dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                text = path.read_text(errors="replace")
            except OSError:  # the namespace files
                continue
            if any(s in text for s in secrets):
                assert path.name in ("hosts.ini", "lab.json"), path
                assert path.stat().st_mode & 0o077 == 0, path
