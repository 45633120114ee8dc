"""`halb deploy` and `halb status` against a lab whose hosts boot systemd
(`halb lab up --init systemd`).

Every host but the taskbox is systemd as PID 1 in a private overlay root. Masters and
nodes run their stand-ins (apiserver, console) as units. LB hosts start as fresh
servers: no HAProxy, no keepalived. halb reaches it over SSH from the taskbox and installs both
with apt from the lab's local package source, installs the drop-ins, enables the units
and reloads HAProxy with `systemctl reload`, as on a real server. The machine's own
files and packages must not notice any of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from halb import lab as labmod
from halb.lab import Lab
from halb.lab.netns import init_pid, list_netns, mounts
from halb.lab.sdhost import CGROUP_PARENT, cgroup2_root
from halb.lab.sdroot import APISERVER_UNIT, CONSOLE_UNIT
from halb.lab.topology import Init

pytestmark = pytest.mark.lab

HAPROXY_DROPIN = "/etc/systemd/system/haproxy.service.d/90-halb.conf"
KEEPALIVED_DROPIN = "/etc/systemd/system/keepalived.service.d/90-halb.conf"


def tree_digest(root: Path) -> str:
    """One checksum over the names, modes and contents of every file under `root`."""
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            p = Path(d, f)
            h.update(f"{p} {p.lstat().st_mode:o}\n".encode())
            if p.is_file() and not p.is_symlink():
                h.update(p.read_bytes())
    return h.hexdigest()


def machine_packages() -> int:
    return subprocess.run(
        ["dpkg", "-s", "haproxy", "keepalived"], capture_output=True, check=False
    ).returncode


@pytest.fixture(scope="module")
def machine() -> Iterator[dict[str, Any]]:
    """The machine's state before the lab exists: a canary in /tmp, /etc/haproxy."""
    canary = Path("/tmp") / f"halb-canary-{secrets.token_hex(6)}"
    text = secrets.token_hex(16)
    canary.write_text(text)
    try:
        yield {"canary": canary, "text": text, "etc_haproxy": tree_digest(Path("/etc/haproxy"))}
    finally:
        canary.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def sdlab(machine: dict[str, Any], lab_factory: Any) -> Lab:
    lab: Lab = lab_factory(lbs=2, masters=1, nodes=1, init=Init.SYSTEMD)
    return lab


def run(
    lab: Lab, host: str, argv: list[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return lab.run(host, argv, timeout=timeout)


def deploy(lab: Lab, spec: Path | None = None) -> tuple[int, dict[str, Any], str]:
    r = run(lab, "taskbox", ["halb", "deploy", "-c", str(spec or lab.spec), "--json"], 300)
    try:
        return r.returncode, json.loads(r.stdout), r.stderr
    except json.JSONDecodeError:
        pytest.fail(f"deploy printed no JSON (rc {r.returncode}): {r.stdout}\n{r.stderr}")


def main_prop(lab: Lab, host: str, unit: str, prop: str) -> str:
    return run(lab, host, ["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()


def main_pid(lab: Lab, lb: str, unit: str = "haproxy") -> int:
    return int(main_prop(lab, lb, unit, "MainPID"))


def installed(lab: Lab, lb: str, pkg: str) -> bool:
    return run(lab, lb, ["dpkg", "-s", pkg]).returncode == 0


def lab_processes(name: str, d: Path, zombies: bool = True) -> list[str]:
    """Processes in a cgroup of the lab's systemd hosts or with its dir in their argv."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cg = (p / "cgroup").read_text()
            argv = (p / "cmdline").read_bytes().decode(errors="replace")
            state = (p / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if (f"halb-{name}-" in cg or str(d) in argv) and (zombies or state != "Z"):
            found.append(f"{p.name} {state} {argv[:80]!r}")
    return found


@pytest.fixture(scope="module")
def first(sdlab: Lab) -> dict[str, Any]:
    """Before and after the first deploy onto the fresh hosts."""
    before = {
        lb: {p: installed(sdlab, lb, p) for p in ("haproxy", "keepalived")} for lb in sdlab.lbs
    }
    status = run(sdlab, "taskbox", ["halb", "status", "-c", str(sdlab.spec), "--json"], 120)
    rc, doc, err = deploy(sdlab)
    assert rc == 0, err
    return {"before": before, "doc": doc, "err": err, "status": status}


# -------------------------------------------------------------------------------- tests


def running_services(lab: Lab, host: str) -> set[str]:
    units = run(lab, host, ["systemctl", "list-units", "--type=service", "--state=running",
                            "--plain", "--no-legend"]).stdout  # fmt: skip
    return {u.split()[0] for u in units.splitlines()}


def test_every_host_boots_systemd_in_its_own_root(sdlab: Lab) -> None:
    base = {"ssh.service", "systemd-journald.service"}
    wanted = {
        **dict.fromkeys(sdlab.lbs, base),  # fresh servers: HAProxy and keepalived come later
        **dict.fromkeys(sdlab.masters, base | {APISERVER_UNIT, CONSOLE_UNIT}),
        **dict.fromkeys(sdlab.nodes, base | {CONSOLE_UNIT}),
    }
    for host, services in wanted.items():
        assert run(sdlab, host, ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        assert run(sdlab, host, ["systemctl", "is-system-running"]).stdout.strip() == "running"
        assert run(sdlab, host, ["hostname"]).stdout.strip() == host
        # only what a server of its role runs
        assert running_services(sdlab, host) == services, host
    for host in sdlab.masters + sdlab.nodes:
        for unit in wanted[host] - base:
            assert run(sdlab, host, ["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
        assert not installed(sdlab, host, "haproxy")
        assert not installed(sdlab, host, "keepalived")
    assert run(sdlab, "taskbox", ["cat", "/proc/1/comm"]).stdout.strip() != "systemd"


def curl(lab: Lab, url: str) -> tuple[str, str]:
    cp = lab.run("taskbox", ["curl", "-sk", "-m", "5", "-w", "\n%{http_code}", url], check=True)
    body, _, code = cp.stdout.rpartition("\n")
    return code, body


def test_stand_in_units_answer_and_follow_the_control_file(sdlab: Lab) -> None:
    master, node = sdlab.masters[0], sdlab.nodes[0]
    url = f"https://{sdlab.address(master)}:6443/readyz"
    assert curl(sdlab, url) == ("200", "ok")
    try:
        # the same switch as on supervisor hosts: a file in the host's state dir
        sdlab.set_readyz(master, 500)
        assert curl(sdlab, url)[0] == "500"
        # and as the drills flip it: a file written inside the host
        run(sdlab, master, ["sh", "-c", "printf '401\\n' > /run/halb-lab/readyz"])
        assert curl(sdlab, url)[0] == "401"
    finally:
        sdlab.set_readyz(master, None)
    assert curl(sdlab, url) == ("200", "ok")
    for host in (master, node):
        assert curl(sdlab, f"http://{sdlab.address(host)}:30880/") == ("200", f"console {host}\n")


def test_ssh_logins_are_those_of_the_supervisor_lab(sdlab: Lab) -> None:
    key = run(sdlab, "taskbox", [*sdlab.ssh_argv(sdlab.masters[0]), "hostname"], 30)
    assert key.stdout.strip() == sdlab.masters[0], key.stderr
    node = sdlab.nodes[0]
    assert node in sdlab.password_hosts
    argv = [
        "sshpass", "-e", "ssh", "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={sdlab.known_hosts}", "-o", "PubkeyAuthentication=no",
        f"root@{sdlab.address(node)}", "hostname; ps -o comm= -p 1",
    ]  # fmt: skip
    cp = sdlab.run("taskbox", argv, env={"SSHPASS": sdlab.password}, timeout=30)
    assert cp.stdout.split() == [node, "systemd"], cp.stderr
    refused = run(sdlab, "taskbox", [*sdlab.ssh_argv(node), "true"], 30)
    assert refused.returncode == 255  # the key alone is refused there, as on the default lab


def test_fresh_lb_hosts_get_haproxy_and_keepalived_from_deploy(
    sdlab: Lab, first: dict[str, Any]
) -> None:
    for lb in sdlab.lbs:
        assert first["before"][lb] == {"haproxy": False, "keepalived": False}
        assert installed(sdlab, lb, "haproxy")
        assert installed(sdlab, lb, "keepalived")
        assert first["doc"]["hosts"][lb]["status"] == "changed"
    assert "installing haproxy keepalived" in first["err"]
    # status before: nothing runs, and units that are not installed have no journal
    assert first["status"].returncode == 1
    for h in json.loads(first["status"].stdout)["hosts"]:
        assert not h["haproxy_up"] and not h["keepalived_up"] and h["journal"] == [], h
    # Debian's postinst started haproxy with the packaged config: deploy restarts it once
    assert "restarting haproxy (started by its package)" in first["err"]


def test_units_are_enabled_and_active_with_the_drop_ins(sdlab: Lab, first: dict[str, Any]) -> None:
    shipped = {
        path: (resources.files("halb") / "systemd" / name).read_text()
        for path, name in (
            (HAPROXY_DROPIN, "haproxy.service.d-90-halb.conf"),
            (KEEPALIVED_DROPIN, "keepalived.service.d-90-halb.conf"),
        )
    }
    for lb in sdlab.lbs:
        for unit, dropin in (("haproxy", HAPROXY_DROPIN), ("keepalived", KEEPALIVED_DROPIN)):
            assert run(sdlab, lb, ["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
            assert run(sdlab, lb, ["systemctl", "is-active", unit]).stdout.strip() == "active"
            paths = run(sdlab, lb, ["systemctl", "show", "-p", "DropInPaths", "--value", unit])
            assert dropin in paths.stdout.split()  # loaded: the daemon-reload happened
            assert run(sdlab, lb, ["cat", dropin]).stdout == shipped[dropin]
        # Restart=always from the drop-in is what systemd now uses
        restart = run(sdlab, lb, ["systemctl", "show", "-p", "Restart", "--value", "haproxy"])
        assert restart.stdout.strip() == "always"


def test_second_deploy_is_unchanged_with_the_same_main_pid(
    sdlab: Lab, first: dict[str, Any]
) -> None:
    pids = {lb: main_pid(sdlab, lb) for lb in sdlab.lbs}
    rc, doc, err = deploy(sdlab)
    assert rc == 0, err
    for lb in sdlab.lbs:
        assert doc["hosts"][lb]["status"] == "unchanged"
        assert main_pid(sdlab, lb) == pids[lb]
    assert "installing" not in err


def test_config_change_reloads_haproxy_under_load_with_no_failed_request(
    sdlab: Lab, first: dict[str, Any], client_load: Any
) -> None:
    data = yaml.safe_load(sdlab.spec.read_text())
    data["health"] = {**(data.get("health") or {}), "inter": "7s"}
    data["vrrp"] = {**(data.get("vrrp") or {}), "preempt_delay": 7.0}  # keepalived.conf too
    spec = sdlab.dir / "halb-inter7.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    pids = {lb: main_pid(sdlab, lb) for lb in sdlab.lbs}
    kpids = {lb: main_pid(sdlab, lb, "keepalived") for lb in sdlab.lbs}
    holders = sdlab.vip_holders()
    with client_load(sdlab) as result:
        rc, doc, err = deploy(sdlab, spec)
    assert rc == 0, err
    for lb in sdlab.lbs:
        assert doc["hosts"][lb]["services"]["haproxy"] == "reload"
        assert main_pid(sdlab, lb) == pids[lb]  # systemctl reload: master-worker, same master
        assert "inter 7s" in run(sdlab, lb, ["cat", "/etc/haproxy/haproxy.cfg"]).stdout
        # keepalived: `systemctl reload` (HUP), same process, the VIPs stay where they were
        assert doc["hosts"][lb]["services"]["keepalived"] == "reload"
        assert main_pid(sdlab, lb, "keepalived") == kpids[lb]
        kconf = run(sdlab, lb, ["cat", "/etc/keepalived/keepalived.conf"]).stdout
        assert "preempt_delay 7" in kconf
        journal = run(sdlab, lb, ["journalctl", "-u", "haproxy", "--no-pager", "-o", "cat"])
        assert "Reloaded" in journal.stdout or "Reloading" in journal.stdout
    assert sdlab.vip_holders() == holders
    assert result["failed"] == [], result["failed"][:5]
    assert result["ok"] > 50, result


def test_status_is_healthy_from_unit_state(sdlab: Lab, first: dict[str, Any]) -> None:
    r = run(sdlab, "taskbox", ["halb", "status", "-c", str(sdlab.spec), "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    for h in doc["hosts"]:
        assert h["haproxy_up"] and h["keepalived_up"], h
        assert h["haproxy_pid"] == main_pid(sdlab, h["host"])
        assert h["journal"] == []  # healthy units: no journal read


# Writes the password read from stdin into haproxy.cfg's global section as a bad value
# (HAProxy quotes it back in its error); builtins only, so it never shows in an argv.
BREAK_HAPROXY = """
read -r p
cp /etc/haproxy/haproxy.cfg /root/haproxy.cfg.good
while IFS= read -r l; do
  printf '%s\\n' "$l"
  if [ "$l" = global ]; then printf '    nbthread %s\\n' "$p"; fi
done < /root/haproxy.cfg.good > /etc/haproxy/haproxy.cfg
systemctl restart haproxy
"""
NO_RESTART = "/run/systemd/system/keepalived.service.d/99-test-no-restart.conf"


def status_of(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return run(lab, "taskbox", ["halb", "status", "-c", str(lab.spec), *args], 120)


def wait_for(lab: Lab, host: str, unit: str, what: str, expected: str, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while True:
        got = main_prop(lab, host, unit, what)
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{host}: {unit} {what}={got}, not {expected}"
        time.sleep(0.2)


def test_status_shows_the_journal_of_units_that_are_not_well_without_secrets(
    sdlab: Lab, first: dict[str, Any]
) -> None:
    lb = sdlab.lbs[1]  # a backup (lower priority): the VIPs stay on the other LB
    assert lb in sdlab.password_hosts  # its SSH password is one of the secrets status knows
    secret = sdlab.password
    try:
        broke = sdlab.run(lb, ["sh", "-c", BREAK_HAPROXY], input=secret + "\n")
        assert broke.returncode != 0  # the restart fails: HAProxy refuses the config
        # keepalived SIGKILLed with Restart= off for this test: it stays failed
        sdlab.run(lb, ["sh", "-c", f"mkdir -p {Path(NO_RESTART).parent} && "
                       f"printf '[Service]\\nRestart=no\\n' > {NO_RESTART} && "
                       "systemctl daemon-reload && systemctl kill -s KILL keepalived"],
                  check=True)  # fmt: skip
        wait_for(sdlab, lb, "keepalived", "ActiveState", "failed")
        raw = run(sdlab, lb, ["journalctl", "-u", "haproxy", "-n", "20", "--no-pager"]).stdout
        assert secret in raw  # HAProxy did quote it: the status below could leak it

        r = status_of(sdlab, "--json")
        assert r.returncode == 1, r.stdout + r.stderr
        assert secret not in r.stdout + r.stderr
        host = next(h for h in json.loads(r.stdout)["hosts"] if h["host"] == lb)
        journal = {j["unit"]: j for j in host["journal"]}
        assert journal["keepalived"]["reason"] == "failed"
        assert any("status=9/KILL" in ln for ln in journal["keepalived"]["lines"])
        assert journal["haproxy"]["reason"].startswith("activating"), journal["haproxy"]
        assert any("unparsable integer value in '********'" in ln
                   for ln in journal["haproxy"]["lines"]), journal["haproxy"]  # fmt: skip
        for j in journal.values():
            assert 0 < len(j["lines"]) <= 8 and all(len(ln) <= 300 for ln in j["lines"])
        other = next(h for h in json.loads(r.stdout)["hosts"] if h["host"] != lb)
        assert other["journal"] == []

        text = status_of(sdlab)
        assert text.returncode == 1 and secret not in text.stdout + text.stderr
        assert "  keepalived failed; last journal lines:" in text.stdout
        assert "'********'" in text.stdout
    finally:
        sdlab.run(lb, ["sh", "-c", f"rm -f {NO_RESTART} && systemctl daemon-reload && "
                       "cp /root/haproxy.cfg.good /etc/haproxy/haproxy.cfg && "
                       "systemctl restart haproxy keepalived"])  # fmt: skip
    wait_for(sdlab, lb, "haproxy", "ActiveState", "active")
    wait_for(sdlab, lb, "keepalived", "ActiveState", "active")
    restarts = int(main_prop(sdlab, lb, "keepalived", "NRestarts"))

    # A crash that systemd repairs (Restart=always from the drop-in): a note, exit 0
    run(sdlab, lb, ["systemctl", "kill", "-s", "KILL", "keepalived"])
    wait_for(sdlab, lb, "keepalived", "NRestarts", str(restarts + 1))
    wait_for(sdlab, lb, "keepalived", "ActiveState", "active")
    r = status_of(sdlab, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert any(n.startswith(f"{lb}: keepalived up for ") for n in doc["notes"]), doc["notes"]
    host = next(h for h in doc["hosts"] if h["host"] == lb)
    (j,) = [j for j in host["journal"] if j["unit"] == "keepalived"]
    assert j["running"] is True
    # systemd's own lines: why and when it restarted keepalived, not its start-up chatter
    assert all(" systemd[1]: " in ln for ln in j["lines"]), j["lines"]
    assert any("status=9/KILL" in ln for ln in j["lines"]), j["lines"]
    assert any("Scheduled restart job" in ln for ln in j["lines"]), j["lines"]


def test_lab_status_shows_the_systemd_hosts(sdlab: Lab) -> None:
    (report,) = labmod.status(sdlab.name)
    inits = {h["host"]: h.get("init") for h in report["hosts"] if h["host"] != "sw"}
    assert inits == dict.fromkeys([*sdlab.lbs, *sdlab.masters, *sdlab.nodes], "systemd") | {
        "taskbox": "plain"
    }
    daemons = {h["host"]: set(h["daemons"]) for h in report["hosts"]}
    assert {"apiserver", "console"} <= daemons[sdlab.masters[0]]
    assert "console" in daemons[sdlab.nodes[0]]


def test_down_leaves_nothing_and_the_machine_is_untouched(
    sdlab: Lab, machine: dict[str, Any]
) -> None:
    name, d = sdlab.name, sdlab.dir
    inits = [init_pid(h.netns) for h in sdlab.plan.hosts if h.init is Init.SYSTEMD]
    steps = labmod.down(name, d)
    assert any(f"halted {len(inits)} systemd hosts" in s for s in steps), steps
    assert len(inits) == len(sdlab.plan.inventory_hosts)
    assert not [ns for ns in list_netns() if ns.startswith(f"halb-{name}-")]
    assert not [m.target for m in mounts() if str(d) in m.target or f"halb-{name}-" in m.target]
    for pid in inits:
        assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert lab_processes(name, d, zombies=False) == []
    # The unshare parents end as zombies of the machine's init, which reaps them.
    deadline = time.monotonic() + 15
    while lab_processes(name, d) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab_processes(name, d) == []
    cgroups = cgroup2_root()
    assert cgroups is not None
    assert not list((cgroups / CGROUP_PARENT).glob(f"halb-{name}-*"))
    assert labmod.down(name, d) == []  # safe twice
    # the machine's /tmp, /etc/haproxy and packages never saw the hosts
    assert machine["canary"].read_text() == machine["text"]
    assert tree_digest(Path("/etc/haproxy")) == machine["etc_haproxy"]
    assert machine_packages() == 0
