"""`halb deploy` on a real lab: real sshd, HAProxy and keepalived in network namespaces.

halb runs inside the taskbox and reaches the LB hosts over SSH (one of them by password),
exactly as on real machines. Faults are real where they can be: a port taken on the
target makes the reload fail, a missing interface makes `keepalived -t` fail, the SSH
ControlMaster is SIGKILLed halfway through an upload. Only the broken HAProxy config is
injected (through the deploy API), since a render that fails `haproxy -c` is a bug
the renderer's own tests guard against.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from halb.lab import Lab
from halb.spec import load_cluster

pytestmark = pytest.mark.lab

HCFG = "/etc/haproxy/haproxy.cfg"
KCFG = "/etc/keepalived/keepalived.conf"
# Everything any command printed in this module; the lab password must be in none of it.
OUTPUTS: list[str] = []


# ------------------------------------------------------------------------------ helpers


def run(
    lab: Lab, host: str, argv: list[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    r = lab.run(host, argv, timeout=timeout)
    OUTPUTS.append(r.stdout + r.stderr)
    return r


def deploy(lab: Lab, spec: Path | None = None, *extra: str) -> tuple[int, dict[str, Any], str]:
    r = run(
        lab,
        "taskbox",
        ["halb", "deploy", "-c", str(spec or lab.spec), "--json", *extra],
        timeout=120,
    )
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"deploy printed no JSON (rc {r.returncode}): {r.stdout}\n{r.stderr}")
    return r.returncode, doc, r.stderr


def master_pid(lab: Lab, lb: str) -> int:
    return int(run(lab, lb, ["cat", "/run/haproxy.pid"]).stdout.split()[0])


def digest(lab: Lab, lb: str, path: str) -> str:
    return run(lab, lb, ["sha256sum", path]).stdout.split()[0]


def temps(lab: Lab, lb: str) -> list[str]:
    r = run(lab, lb, ["sh", "-c", "ls -a /etc/haproxy /etc/keepalived /etc/keepalived/halb"])
    return [n for n in r.stdout.split() if n.startswith(".halb-tmp-")]


def curl(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return run(lab, "taskbox", ["curl", "-s", "-m", "3", *args])


def answers(lab: Lab) -> bool:
    r = curl(lab, "-k", f"https://{lab.vip_internal}:6443/readyz")
    return r.returncode == 0 and r.stdout == "ok"


def variant(lab: Lab, name: str, **changes: Any) -> Path:
    """A copy of the lab's halb.yaml with top-level keys merged in (same inventory)."""
    data = yaml.safe_load(lab.spec.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    p = lab.dir / f"halb-{name}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def api_script(lab: Lab, name: str, body: str) -> Path:
    """A Python script for the taskbox that drives halb.deploy directly."""
    p = lab.dir / f"{name}.py"
    p.write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        "from halb import deploy as d\n"
        "from halb.render import RenderedFile, render_cluster\n"
        "from halb.spec import load_cluster\n"
        "cluster = load_cluster(Path(sys.argv[1]))\n"
        "rendered = render_cluster(cluster)\n" + body
    )
    return p


@pytest.fixture(scope="module")
def first(lab: Lab, ps_watch: Any) -> dict[str, Any]:
    """The first deploy onto fresh LB hosts, with a `ps` watch running throughout."""
    with ps_watch() as ps:
        t0 = time.monotonic()
        rc, doc, err = deploy(lab)
        seconds = time.monotonic() - t0
    assert rc == 0, err
    return {"doc": doc, "err": err, "seconds": seconds, "ps": ps.snapshots}


# -------------------------------------------------------------------------------- tests


def test_first_deploy_serves_both_frontends_through_the_vips(
    lab: Lab, first: dict[str, Any]
) -> None:
    doc = first["doc"]
    assert doc["ok"] and doc["changed"]
    for lb in lab.lbs:
        h = doc["hosts"][lb]
        assert h["status"] == "changed", h
        assert h["services"] == {"haproxy": "start", "keepalived": "start"}
        assert h["haproxy_pid"] == master_pid(lab, lb)
    # progress lines name each host
    for lb in lab.lbs:
        assert f"{lb}: done in" in first["err"]

    r = curl(lab, "-k", "-w", " %{http_code}", f"https://{lab.vip_internal}:6443/readyz")
    assert r.stdout == "ok 200", r
    r = curl(lab, "-w", " %{http_code}", f"http://{lab.vip_external}:30880/")
    assert r.stdout.endswith(" 200") and r.stdout.startswith("console "), r

    seen: dict[str, int] = {}
    for _ in range(30):
        body = curl(lab, f"http://{lab.vip_external}:30880/").stdout.split()
        seen[body[1]] = seen.get(body[1], 0) + 1
    console = load_cluster(lab.spec).frontend("console")
    assert console is not None
    names = {b.name for b in console.backends}
    assert set(seen) == names, seen  # round robin reaches every console backend
    assert all(n >= 30 // len(names) - 1 for n in seen.values()), seen

    h = lab.vip_holders()
    assert all(len(v) == 1 for v in h.values()), h
    assert h[lab.vip_internal] == doc["vips"]["internal"]
    assert h[lab.vip_external] == doc["vips"]["external"]


def test_second_deploy_is_unchanged_and_nothing_moves(lab: Lab, first: dict[str, Any]) -> None:
    pids = {lb: master_pid(lab, lb) for lb in lab.lbs}
    stat = {lb: run(lab, lb, ["stat", "-c", "%i %Y", HCFG, KCFG]).stdout for lb in lab.lbs}
    before = lab.vip_holders()
    t0 = time.monotonic()
    rc, doc, err = deploy(lab)
    seconds = time.monotonic() - t0
    assert rc == 0, err
    assert not doc["changed"]
    for lb in lab.lbs:
        h = doc["hosts"][lb]
        assert h["status"] == "unchanged"
        assert set(h["files"].values()) == {"unchanged"}
        assert set(h["services"].values()) == {"none"}
        assert master_pid(lab, lb) == pids[lb]  # not reloaded, not restarted
        # no upload: same inode and mtime
        assert run(lab, lb, ["stat", "-c", "%i %Y", HCFG, KCFG]).stdout == stat[lb]
    assert lab.vip_holders() == before
    assert "uploading" not in err
    assert seconds < 10, seconds


def test_dry_run_and_diff_change_nothing_and_mask_the_vrrp_password(
    lab: Lab, first: dict[str, Any]
) -> None:
    secret = "Qz7xK2pw"
    spec = variant(
        lab,
        "auth",
        vrrp={"auth": {"type": "PASS", "password": secret}},
        health={"inter": "3s"},
    )
    sums = {lb: (digest(lab, lb, HCFG), digest(lab, lb, KCFG)) for lb in lab.lbs}
    r = run(lab, "taskbox", ["halb", "deploy", "-c", str(spec), "--dry-run", "--diff"])
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert secret not in text
    assert "auth_pass ********" in text
    assert "+    default-server inter 3s" in text
    for lb in lab.lbs:
        assert f"  update    {HCFG}" in r.stdout
        assert (digest(lab, lb, HCFG), digest(lab, lb, KCFG)) == sums[lb]
    rc, doc, _ = deploy(lab, spec, "--dry-run")
    assert rc == 0 and doc["dry_run"] and doc["changed"] and doc["hosts"] == {}
    assert secret not in json.dumps(doc)


def test_config_failing_haproxy_check_on_target_replaces_nothing(
    lab: Lab, first: dict[str, Any]
) -> None:
    script = api_script(
        lab,
        "broken",
        "for files in rendered.values():\n"
        "    f = files['/etc/haproxy/haproxy.cfg']\n"
        "    files['/etc/haproxy/haproxy.cfg'] = RenderedFile(\n"
        "        f.content + '\\nfrontend broken\\n    bind 127.0.0.1:1\\n    bogus_kw on\\n',\n"
        "        f.mode)\n"
        "print(json.dumps(d.deploy(cluster, rendered).as_dict()))\n",
    )
    sums = {lb: digest(lab, lb, HCFG) for lb in lab.lbs}
    pids = {lb: master_pid(lab, lb) for lb in lab.lbs}
    r = run(lab, "taskbox", ["python3", str(script), str(lab.spec)], timeout=120)
    doc = json.loads(r.stdout)
    assert not doc["ok"]
    for lb in lab.lbs:
        h = doc["hosts"][lb]
        assert h["status"] == "failed", h
        assert f"{HCFG} failed `haproxy -c`" in h["error"]
        assert "nothing was replaced" in h["error"]
        assert "bogus_kw" in h["error"]  # HAProxy's own message
        assert digest(lab, lb, HCFG) == sums[lb]
        assert master_pid(lab, lb) == pids[lb]
        assert temps(lab, lb) == []
    assert answers(lab)


def test_keepalived_check_failing_on_target_replaces_nothing(
    lab: Lab, first: dict[str, Any]
) -> None:
    """A real target-side failure: the interface named in the spec is not on the hosts."""
    data = yaml.safe_load(lab.spec.read_text())
    vips = {k: {**v, "interface": "eth9"} for k, v in data["vips"].items()}
    spec = variant(lab, "eth9", vips=vips)
    sums = {lb: digest(lab, lb, KCFG) for lb in lab.lbs}
    before = lab.vip_holders()
    rc, doc, _ = deploy(lab, spec)
    assert rc == 1
    for lb in lab.lbs:
        h = doc["hosts"][lb]
        assert h["status"] in ("failed", "rolled-back"), h
        assert f"{KCFG} failed `keepalived -t`" in h["error"]
        assert "eth9" in h["error"]
        assert digest(lab, lb, KCFG) == sums[lb]
        assert temps(lab, lb) == []
    assert lab.vip_holders() == before
    assert answers(lab)


def test_failed_reload_rolls_back_and_the_old_service_keeps_answering(
    lab: Lab, first: dict[str, Any]
) -> None:
    """HAProxy accepts the config (`-c` does not bind) but cannot bind it on lb1."""
    data = yaml.safe_load(lab.spec.read_text())
    fes = {
        **data["frontends"],
        "extra": {"vip": "internal", "port": 6444, "backends": "kube-master", "backend_port": 6443},
    }
    spec = variant(lab, "extra", frontends=fes)
    lb = lab.lbs[0]
    sums = {x: digest(lab, x, HCFG) for x in lab.lbs}
    pids = {x: master_pid(lab, x) for x in lab.lbs}
    squatter = subprocess.Popen(
        [
            *lab.enter_argv(lb),
            "python3",
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket()\n"
            f"s.bind(({lab.vip_internal!r}, 6444))\n"
            "s.listen(8)\n"
            "print('bound', flush=True)\n"
            "time.sleep(90)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "bound"
        rc, doc, _ = deploy(lab, spec)
    finally:
        squatter.kill()
        squatter.wait()
    assert rc == 1
    h = doc["hosts"][lb]
    assert h["status"] == "rolled-back", h
    assert "reload did not start a new worker" in h["error"]
    for x in lab.lbs:
        assert doc["hosts"][x]["status"] == "rolled-back", doc["hosts"][x]
        assert digest(lab, x, HCFG) == sums[x]
        assert master_pid(lab, x) == pids[x]  # reloaded back, never restarted
    assert answers(lab)
    # the old config is what runs again: nothing listens on 6444 through the VIP
    assert curl(lab, f"http://{lab.vip_internal}:6444/").returncode != 0


def test_ssh_killed_mid_upload_leaves_the_old_file(lab: Lab, first: dict[str, Any]) -> None:
    """The ControlMaster is SIGKILLed when half of the new files are on the target."""
    spec = variant(lab, "inter4", health={"inter": "4s"})
    script = api_script(
        lab,
        "drop",
        "import os, re, signal, subprocess, time\n"
        "from halb.transport import for_host\n"
        "from halb.transport.ssh import SshTransport\n"
        "from halb.deploy.steps import UPLOAD_SCRIPT\n"
        "class Dropping(SshTransport):\n"
        "    def run(self, argv, *, input=None, timeout=None, check=False):\n"
        "        if list(argv[:3]) != ['sh', '-c', UPLOAD_SCRIPT]:\n"
        "            return super().run(argv, input=input, timeout=timeout, check=check)\n"
        "        n = int(argv[4])  # the folders come first, then (temp, mode, size)\n"
        "        temps = list(argv[5 + n :: 3])\n"
        "        proc = self.popen(argv)\n"
        "        half = len(input) // 2\n"
        "        proc.stdin.write(input[:half]); proc.stdin.flush()\n"
        "        for _ in range(200):\n"
        "            size = ['sh', '-c', 'cat \"$@\" 2>/dev/null | wc -c', 'sh', *temps]\n"
        "            r = super().run(size)\n"
        "            if int(r.out) >= half: break\n"
        "            time.sleep(0.05)\n"
        "        chk = subprocess.run(self.ssh_argv(['-O', 'check']), capture_output=True,\n"
        "                             text=True, env=self._env())\n"
        "        os.kill(int(re.search(r'pid=(\\d+)', chk.stderr).group(1)), signal.SIGKILL)\n"
        "        proc.wait(timeout=10)\n"
        "        print('dropped', self.name, half, 'of', len(input), file=sys.stderr)\n"
        "        raise self.error(f'link dropped during upload (exit {proc.returncode})')\n"
        "def factory(host):\n"
        "    t = for_host(host)\n"
        "    t.__class__ = Dropping\n"
        "    return t\n"
        "print(json.dumps(d.deploy(cluster, rendered, transport_for=factory).as_dict()))\n",
    )
    sums = {lb: digest(lab, lb, HCFG) for lb in lab.lbs}
    pids = {lb: master_pid(lab, lb) for lb in lab.lbs}
    r = run(lab, "taskbox", ["python3", str(script), str(spec)], timeout=120)
    doc = json.loads(r.stdout)
    for lb in lab.lbs:
        assert f"dropped {lb} " in r.stderr
        h = doc["hosts"][lb]
        assert h["status"] == "failed" and "link dropped" in h["error"], h
        assert digest(lab, lb, HCFG) == sums[lb]
        assert master_pid(lab, lb) == pids[lb]
        assert temps(lab, lb) == []  # dropped over a fresh connection
    assert answers(lab)
    # the remote locks died with the link: the same change now goes through
    rc, doc, err = deploy(lab, spec)
    assert rc == 0, err
    for lb in lab.lbs:
        assert doc["hosts"][lb]["status"] == "changed"
        assert doc["hosts"][lb]["services"]["haproxy"] == "reload"
        assert master_pid(lab, lb) == pids[lb]
    assert "inter 4s" in run(lab, lab.lbs[0], ["cat", HCFG]).stdout
    rc, doc, err = deploy(lab)  # back to the lab's spec
    assert rc == 0, err


# the load client, run in the taskbox


def test_reload_under_load_fails_no_request(
    lab: Lab, first: dict[str, Any], client_load: Any
) -> None:
    """Promise 4: a config change is a seamless HAProxy reload, never a restart."""
    pids = {lb: master_pid(lab, lb) for lb in lab.lbs}
    with client_load(lab) as result:
        rc, doc, err = deploy(lab, variant(lab, "inter7", health={"inter": "7s"}))
    assert rc == 0, err
    for lb in lab.lbs:
        assert doc["hosts"][lb]["services"]["haproxy"] == "reload"
        assert master_pid(lab, lb) == pids[lb]
    assert result["failed"] == [], result["failed"][:5]
    assert result["ok"] > 50, result
    rc, _, err = deploy(lab)
    assert rc == 0, err


def test_a_second_deploy_is_refused_while_one_holds_the_lock(
    lab: Lab, first: dict[str, Any]
) -> None:
    lb = lab.lbs[-1]
    # -o: only flock itself holds the lock, so killing it releases the lock at once
    holder = subprocess.Popen(
        [
            *lab.enter_argv(lb),
            "flock", "-o", "/var/lib/halb/deploy.lock", "sh", "-c",
            "echo 'ops-laptop pid 4242' > /var/lib/halb/deploy.holder; echo held; sleep 60",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = run(lab, "taskbox", ["halb", "deploy", "-c", str(lab.spec)])
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    assert r.returncode == 1
    assert f"{lb}: another deploy holds /var/lib/halb/deploy.lock (ops-laptop pid 4242)" in (
        r.stderr
    )
    assert "Traceback" not in r.stderr

    # Two deploys started together from the taskbox: the local lock turns one away.
    spec = variant(lab, "inter5", health={"inter": "5s"})
    argv = [*lab.enter_argv("taskbox"), "halb", "deploy", "-c", str(spec)]
    a = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    b = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    a_out, a_err = a.communicate(timeout=120)
    OUTPUTS.extend([a_out + a_err, b.stdout + b.stderr])
    assert sorted([a.returncode, b.returncode]) == [0, 1], (a_err, b.stderr)
    loser = b if b.returncode else subprocess.CompletedProcess(argv, 1, a_out, a_err)
    assert "another halb deploy is running on this machine" in loser.stderr
    rc, _, err = deploy(lab)
    assert rc == 0, err


def test_a_lock_that_cannot_be_taken_is_reported_not_a_traceback(
    lab: Lab, first: dict[str, Any]
) -> None:
    lb = lab.lbs[-1]
    # the state folder goes read-only inside that host only, so the lock file cannot exist
    lab.run(lb, ["mount", "-o", "remount,bind,ro", "/var/lib/halb"], check=True)
    try:
        r = run(lab, "taskbox", ["halb", "deploy", "-c", str(lab.spec)])
    finally:
        lab.run(lb, ["mount", "-o", "remount,bind,rw", "/var/lib/halb"], check=True)
    assert r.returncode == 1, r.stderr
    assert f"{lb}: cannot take /var/lib/halb/deploy.lock" in r.stderr
    assert "Read-only file system" in r.stderr
    assert "Traceback" not in r.stderr
    rc, _, err = deploy(lab)
    assert rc == 0, err


def test_limit_deploys_one_host_only(lab: Lab, first: dict[str, Any]) -> None:
    spec = variant(lab, "inter6", health={"inter": "6s"})
    other = lab.lbs[1]
    sums = digest(lab, other, HCFG)
    rc, doc, err = deploy(lab, spec, "--limit", lab.lbs[0])
    assert rc == 0, err
    assert list(doc["hosts"]) == [lab.lbs[0]]
    assert doc["hosts"][lab.lbs[0]]["status"] == "changed"
    assert digest(lab, other, HCFG) == sums
    r = run(lab, "taskbox", ["halb", "deploy", "-c", str(lab.spec), "--limit", "master1"])
    assert r.returncode == 2 and "not an LB host" in r.stderr
    rc, _, err = deploy(lab)
    assert rc == 0, err


def test_wrong_password_error_names_the_host_and_hides_the_password(lab: Lab) -> None:
    wrong = "Wr0ng-Pa55-x"
    pw_host = next(h for h in lab.password_hosts if h in lab.lbs)
    inv = lab.inventory.read_text()
    inv = re.sub(rf"^({pw_host} .*ansible_ssh_pass=)\S+", rf"\g<1>{wrong}", inv, flags=re.M)
    (lab.dir / "hosts-wrong.ini").write_text(inv)
    spec = variant(lab, "wrongpw", inventory="hosts-wrong.ini")
    r = run(lab, "taskbox", ["halb", "deploy", "-c", str(spec)])
    assert r.returncode == 1
    assert f"{pw_host}: ssh to root@{lab.address(pw_host)}:22 failed" in r.stderr
    # the developer view (a full traceback) does not carry it either
    tb = run(lab, "taskbox", ["halb", "--traceback", "deploy", "-c", str(spec)])
    assert tb.returncode != 0 and "Traceback" in tb.stderr
    assert wrong not in tb.stdout + tb.stderr
    assert "Permission denied" in r.stderr
    assert wrong not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_the_lab_password_never_appears(lab: Lab, first: dict[str, Any]) -> None:
    """In any output, any process's argv during a deploy, or any file halb wrote."""
    pw = lab.password
    assert pw and any(h in lab.lbs for h in lab.password_hosts)  # the password path ran
    assert any("sshpass -e ssh" in snap for snap in first["ps"])  # ps saw the ssh children
    for snap in first["ps"]:
        assert pw not in snap
    for text in OUTPUTS:
        assert pw not in text
    for lb in lab.lbs:
        r = run(
            lab,
            lb,
            ["grep", "-rlF", "--", pw, "/var/log/halb", "/var/lib/halb", "/etc/haproxy",
             "/etc/keepalived", "/etc/sysctl.d", "/run/halb"],
        )  # fmt: skip
        assert r.returncode == 1 and r.stdout == "", r.stdout
    # nothing in the taskbox's temp dirs or the ssh control dirs
    r = run(lab, "taskbox", ["sh", "-c", f"grep -rlF -- '{pw}' /tmp/halb-ssh-* 2>/dev/null"])
    assert r.stdout == ""


@pytest.fixture(autouse=True)
def _report_timing(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    request.node.user_properties.append(("seconds", round(time.monotonic() - t0, 2)))
