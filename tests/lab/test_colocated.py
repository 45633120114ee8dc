"""The KubeSphere guide's six machines (3 masters with etcd, 3 workers, no [lb] group) on
the lab: the masters carry the VIP beside the apiserver stand-in on 0.0.0.0:6443 and every
host answers 30880 on every address. halb keeps VIP:6443 and VIP:30880 through its
nftables redirect, balanced over every backend, and the redirect follows HAProxy."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import halb
from halb.facts.pids import pids_argv
from halb.lab import Lab
from halb.lab.netns import spawn_daemon
from halb.paths import (
    DEPLOYED_FILES,
    DEPLOYED_STATE,
    DEPLOYED_TABLES,
    HAPROXY_PIDFILE,
    MANAGED_MARK,
    REDIRECT_NFT,
    REDIRECT_TABLE,
    SCRIPT_DIR,
    VRRP_TABLE,
)
from halb.services import SUPERVISED, start_argv
from tests.lab.through_vip import answers, assert_public_ports_balanced, redirect_vips

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def six(lab_factory) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = lab_factory(lbs=0, masters=3, nodes=3)
    cp = lab.run("taskbox", ["halb", "up", "-c", str(lab.dir / "halb.yaml")], timeout=240)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    yield lab


def holder(lab: Lab) -> str:
    holders = lab.vip_holders()[lab.vip_internal]
    assert len(holders) == 1, holders
    return holders[0]


def test_public_ports_kept_and_balanced_over_every_backend(six: Lab) -> None:
    assert_public_ports_balanced(six, 12, 24)
    # the holder's own requests go through HAProxy too (the output hook), not only to itself
    h = holder(six)
    own = answers(six, h, f"http://{six.vip_external}:30880/", 12)
    assert len(set(own)) > 1 and not any(a.startswith("ERR") for a in own), own
    for m in six.masters:
        assert set(redirect_vips(six, m)) == {six.vip_internal, six.vip_external}


def test_apiserver_dying_on_the_holder_costs_nothing(six: Lab) -> None:
    h = holder(six)
    six.set_readyz(h, 500)
    try:
        time.sleep(8)  # HAProxy's checks: inter 2s fall 3
        api = answers(six, "taskbox", f"https://{six.vip_internal}:6443/halb-lab/name", 12)
        assert not any(a.startswith("ERR") for a in api), api
        assert set(api) == {f"apiserver {m}" for m in six.masters if m != h}, api
    finally:
        six.set_readyz(h, None)


def test_no_healthy_backend_falls_through_to_the_holders_own_apiserver(six: Lab) -> None:
    h = holder(six)
    for m in six.masters:
        six.set_readyz(m, 500)
    try:
        time.sleep(8)  # HAProxy's checks: inter 2s fall 3
        api = answers(six, "taskbox", f"https://{six.vip_internal}:6443/halb-lab/name", 6)
        assert set(api) == {f"apiserver {h}"}, api
    finally:
        for m in six.masters:
            six.set_readyz(m, None)
    time.sleep(6)  # rise 2


def kill_haproxy(lab: Lab, host: str) -> float:
    """kill -9 HAProxy's master on `host`; the monotonic time just before."""
    pid = lab.run(host, ["head", "-n1", HAPROXY_PIDFILE]).stdout.strip()
    assert pid.isdigit(), pid
    t0 = time.monotonic()
    lab.run(host, ["kill", "-9", pid], check=True)
    return t0


def start_haproxy(lab: Lab, host: str) -> None:
    """HAProxy started again the way deploy starts it on a supervisor host."""
    cp = lab.run(host, start_argv("haproxy"), timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def wait_moved(lab: Lab, host: str, t0: float, within: float) -> float | None:
    """Seconds from `t0` until the internal VIP has a holder other than `host`."""
    while time.monotonic() - t0 < within:
        now = lab.vip_holders()[lab.vip_internal]
        if now and host not in now:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def wait_redirect(
    lab: Lab, host: str, want: set[str], within: float, since: float | None = None
) -> float | None:
    """Seconds from `since` (default: now) until the redirect on `host` holds exactly
    `want`; None: not within `within` seconds."""
    t0 = time.monotonic() if since is None else since
    while time.monotonic() - t0 < within:
        if set(redirect_vips(lab, host)) == want:
            return time.monotonic() - t0
        time.sleep(0.005)
    return None


def test_haproxy_killed_on_the_holder_keeps_the_vip_and_falls_through(
    six: Lab,
    client_load,  # type: ignore[no-untyped-def]
) -> None:
    h = holder(six)
    both = {six.vip_internal, six.vip_external}
    ext = six.vip_holders()[six.vip_external]
    with client_load(six) as load:
        t0 = kill_haproxy(six, h)
        try:
            gone = wait_redirect(six, h, set(), 5, since=t0)
            assert gone is not None, "the redirect stayed after HAProxy exited"
            # past keepalived's fall (2-3 checks a second apart) with room: no takeover
            time.sleep(6)
            assert six.vip_holders()[six.vip_internal] == [h]
            assert six.vip_holders()[six.vip_external] == ext
            # the VIP answers meanwhile: the holder's own apiserver and console
            api = answers(six, "taskbox", f"https://{six.vip_internal}:6443/halb-lab/name", 6)
            assert set(api) == {f"apiserver {h}"}, api
        finally:
            t1 = time.monotonic()
            start_haproxy(six, h)
        back = wait_redirect(six, h, both, 15, since=t1)
        assert back is not None, "the redirect did not come back after HAProxy restarted"
    print(
        f"redirect dropped {gone * 1000:.0f} ms after kill -9, back {back:.2f} s after "
        f"the restart began (incl. one nft list per poll); load: {load['ok']} ok, "
        f"failed {len(load['failed'])}: {Counter(e.split('(')[0] for e in load['failed'])}"
    )
    assert load["ok"] > 100
    # What fails, and for how long: a connection HAProxy had accepted when it was killed
    # is reset with it (one per client thread at most), and one that arrives between
    # HAProxy's death and the exit hook's flush of the set finds no listener and is
    # refused. The 4 client threads reconnect at once after a refusal, so the count
    # follows their speed, not a request rate: with the watcher flushing first, 3, 4 and
    # 4 failures at load 18-25 (resets of requests in flight), 47 at load 6 (43 refused,
    # all within 10 ms); with redirect.sh flushing, up to 32 at load 25. The bound is on
    # the time: every failure within the window HAProxy was down (a VRRP takeover cost
    # some 15 requests at 100/s, and moved the VIP). It was 1.5 s around the kill until a
    # full CI run saw 36 failures (31 refused) spread over 4.3 s: not explained; a new
    # connection whose ports match a closed one still in conntrack would keep that one's
    # DNAT to the dead HAProxy, which fits, but was not shown.
    kinds = {e.split("(")[0] for e in load["failed"]}
    # a TLS request in flight when HAProxy dies ends as a reset, an EOF or a clean TLS
    # close (SSLZeroReturnError), depending on where the handshake or answer was
    assert kinds <= {"ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected",
                     "SSLEOFError", "SSLZeroReturnError"}, load["failed"]  # fmt: skip
    if load["failed_at"]:
        span = max(load["failed_at"]) - min(load["failed_at"])
        print(f"failures within {span * 1000:.0f} ms")
        down = (t1 - t0) + back + 1.0
        assert span <= down, (span, down, load["failed"])
    assert six.vip_holders()[six.vip_internal] == [h]


def standin_pid(lab: Lab, host: str, port: int) -> int | None:
    """The pid of what listens on `port` in `host` (the stand-in apiserver and console)."""
    out = lab.run(host, ["ss", "-Hltnp", f"sport = :{port}"]).stdout
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def test_haproxy_and_the_holders_own_apiserver_dead_move_the_vip(six: Lab) -> None:
    h = holder(six)
    pid = standin_pid(six, h, 6443)
    assert pid is not None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    os.kill(pid, signal.SIGKILL)  # the apiserver and console stand-in of the holder
    try:
        t0 = kill_haproxy(six, h)
        moved = wait_moved(six, h, t0, 30)
        assert moved is not None, "the VIP stayed on a host with nothing behind it"
        print(f"VIP moved {moved:.2f} s after kill -9 (HAProxy and the apiserver dead)")
        time.sleep(8)  # the new holder's HAProxy marks the dead apiserver down: inter 2s fall 3
        api = answers(six, "taskbox", f"https://{six.vip_internal}:6443/halb-lab/name", 6)
        assert not any(a.startswith("ERR") for a in api), api
    finally:
        src = str(Path(halb.__file__).resolve().parent.parent)
        spawn_daemon(
            six.enter_argv(h),
            [a.decode() for a in argv],
            six.host_dir(h) / "lab-logs" / "fakeapi.log",
            env={"PYTHONPATH": src},
        )
        start_haproxy(six, h)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and standin_pid(six, h, 6443) is None:
        time.sleep(0.2)
    both = {six.vip_internal, six.vip_external}
    assert wait_redirect(six, h, both, 30) is not None


def test_haproxy_dead_and_the_holders_apiserver_not_ready_move_the_vip(six: Lab) -> None:
    """An apiserver that accepts connections but fails /readyz does not hold the VIP:
    the fall-through is judged as HAProxy judges that backend."""
    h = holder(six)
    six.set_readyz(h, 500)
    try:
        t0 = kill_haproxy(six, h)
        moved = wait_moved(six, h, t0, 30)
        assert moved is not None, "the VIP stayed on a host whose apiserver is not ready"
        print(f"VIP moved {moved:.2f} s after kill -9 (HAProxy dead, /readyz 500)")
    finally:
        six.set_readyz(h, None)
        start_haproxy(six, h)
    both = {six.vip_internal, six.vip_external}
    assert wait_redirect(six, h, both, 30) is not None


def test_table_is_halbs_own_and_goes_with_the_lab(six: Lab) -> None:
    out = six.run(six.masters[0], ["nft", "list", "tables"]).stdout
    assert f"table ip {REDIRECT_TABLE}" in out


def test_status_shows_the_redirect_per_host(six: Lab) -> None:
    cp = six.run("taskbox", ["halb", "status", "--json", "-c", str(six.dir / "halb.yaml")])
    doc = json.loads(cp.stdout)
    for h in doc["hosts"]:
        assert h["redirect"].startswith("active "), h
        assert six.vip_internal in h["redirect"] and six.vip_external in h["redirect"]
    text = six.run("taskbox", ["halb", "status", "-c", str(six.dir / "halb.yaml")]).stdout
    assert f"redirect active {six.vip_internal}, {six.vip_external}" in text, text


def squat(lab: Lab, host: str, address: str, port: int) -> subprocess.Popen[str]:
    """A process on `host` that holds address:port, as a port HAProxy then cannot bind."""
    p = subprocess.Popen(
        [*lab.enter_argv(host), "python3", "-c",
         "import socket, time\ns = socket.socket()\n"
         "s.setsockopt(socket.SOL_IP, 15, 1)\n"  # IP_FREEBIND: the VIP may be elsewhere
         f"s.bind(({address!r}, {port}))\ns.listen(8)\nprint('bound', flush=True)\n"
         "time.sleep(90)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "bound"
    return p


def tables(lab: Lab, host: str) -> str:
    """halb's redirect table on HOST as nft lists it ("" when there is none)."""
    return lab.run(host, ["nft", "list", "table", "ip", REDIRECT_TABLE]).stdout


def test_rolled_back_change_puts_the_former_table_back(six: Lab) -> None:
    spec = six.dir / "halb-9450.yaml"
    data = yaml.safe_load(six.spec.read_text())
    data["frontends"]["console"]["listen_port"] = 9450
    spec.write_text(yaml.safe_dump(data))
    before = {m: tables(six, m) for m in six.masters}
    assert all(":9446" in t for t in before.values())
    squatter = squat(six, six.masters[1], six.vip_external, 9450)
    try:
        cp = six.run("taskbox", ["halb", "deploy", "--json", "-c", str(spec)], timeout=180)
    finally:
        squatter.kill()
        squatter.wait()
    doc = json.loads(cp.stdout)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert {h["status"] for h in doc["hosts"].values()} == {"rolled-back"}, doc["hosts"]
    for m in six.masters:
        assert tables(six, m) == before[m]  # the former table, its set as it was
    console = answers(six, "taskbox", f"http://{six.vip_external}:30880/", 6)
    assert not any(a.startswith("ERR") for a in console), console


def test_rolled_back_first_deploy_leaves_no_table(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(lbs=0, masters=2, nodes=1)
    squatter = squat(lab, lab.masters[1], lab.vip_internal, 9445)
    try:
        cp = lab.run("taskbox", ["halb", "deploy", "--json", "-c", str(lab.spec)], timeout=180)
    finally:
        squatter.kill()
        squatter.wait()
    assert cp.returncode == 1, cp.stdout + cp.stderr
    for m in lab.masters:
        assert REDIRECT_TABLE not in tables(lab, m)
        assert lab.run(m, ["test", "-e", REDIRECT_NFT]).returncode != 0


def test_drain_and_undrain_carry_the_redirected_ports(six: Lab, client_load) -> None:  # type: ignore[no-untyped-def]
    h = holder(six)

    def halb(*args: str) -> dict[str, Any]:
        cp = six.run("taskbox", ["halb", *args, "--json", "-c", str(six.spec)], timeout=90)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        return dict(json.loads(cp.stdout))

    with client_load(six) as drained:
        doc = halb("drain", h)
    assert doc["drained"] == [h] and holder(six) != h
    with client_load(six) as undrained:
        halb("undrain", h)
    assert holder(six) == h
    print(f"drain: {drained['ok']} ok, failed {drained['failed']}; "
          f"undrain: {undrained['ok']} ok, failed {undrained['failed']}")  # fmt: skip
    assert drained["ok"] > 100 and undrained["ok"] > 100
    assert drained["failed"] == [] and undrained["failed"] == []


def test_preflight_checks_nft_and_haproxys_internal_ports(six: Lab) -> None:
    def preflight() -> tuple[int, list[dict[str, Any]]]:
        cp = six.run("taskbox", ["halb", "preflight", "--json", "-c", str(six.spec)], timeout=90)
        return cp.returncode, list(json.loads(cp.stdout)["checks"])

    rc, checks = preflight()
    assert rc == 0, [c for c in checks if c["level"] != "ok"]
    nft = [c for c in checks if c["check"] == "nftables"]
    assert {c["host"] for c in nft} == set(six.masters)
    assert all(c["level"] == "ok" for c in nft), nft
    ports = [c["message"] for c in checks if c["check"] == "ports" and c["host"] == "master1"]
    assert f"apiserver {six.vip_internal}:9445 bound by our haproxy" in ports, ports
    # the public port stays with the host's own apiserver: not a conflict
    assert not any(":6443" in p for p in ports), ports
    # another process on an internal port is one, and named
    spec = six.dir / "halb-9460.yaml"
    data = yaml.safe_load(six.spec.read_text())
    data["frontends"]["apiserver"]["listen_port"] = 9460
    spec.write_text(yaml.safe_dump(data))
    squatter = squat(six, "master3", six.vip_internal, 9460)
    try:
        cp = six.run("taskbox", ["halb", "preflight", "--json", "-c", str(spec)], timeout=90)
    finally:
        squatter.kill()
        squatter.wait()
    assert cp.returncode == 2, cp.stdout + cp.stderr  # bad input: choose another port
    bad = [c for c in json.loads(cp.stdout)["checks"] if c["level"] == "fail"]
    assert [c["host"] for c in bad] == ["master3"], bad
    assert f"cannot bind {six.vip_internal}:9460" in bad[0]["message"]
    assert "frontends.apiserver.listen_port" in bad[0]["message"]


def test_ansible_export_gives_what_halb_deploy_gives(lab_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`halb export ansible` run with ansible-playbook (ansible-core, a test extra) on a
    fresh co-located lab: the same files, table and running services as `halb deploy`."""
    lab = lab_factory(lbs=0, masters=2, nodes=1)
    data = yaml.safe_load(lab.spec.read_text())
    data["inventory"] = str(lab.inventory)
    spec = tmp_path / "halb.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    dest = tmp_path / "ansible"
    cp = lab.run("taskbox", ["halb", "export", "ansible", "-c", str(spec), str(dest)])
    assert cp.returncode == 0, cp.stderr
    play = [
        "sh", "-c", 'cd "$1" && exec ansible-playbook site.yml '
        "-e ansible_python_interpreter=/usr/bin/python3", "sh", str(dest),
    ]  # fmt: skip
    cp = lab.run("taskbox", play, timeout=600)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr
    both = {lab.vip_internal, lab.vip_external}
    for m in lab.masters:
        assert wait_redirect(lab, m, both, 20) is not None, m
    by_ansible = {
        m: lab.run(m, ["nft", "list", "table", "ip", REDIRECT_TABLE]).stdout for m in lab.masters
    }
    api = answers(lab, "taskbox", f"https://{lab.vip_internal}:6443/halb-lab/name", 8)
    assert set(api) == {f"apiserver {m}" for m in lab.masters}, api

    def halb(*args: str) -> dict[str, Any]:
        cp = lab.run("taskbox", ["halb", *args, "--json", "-c", str(spec)], timeout=180)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        return dict(json.loads(cp.stdout))

    # halb deploy finds every file and service as it would leave them
    assert {h["status"] for h in halb("deploy")["hosts"].values()} == {"unchanged"}
    # and from scratch it builds the same table
    halb("undeploy")
    halb("deploy")
    for m in lab.masters:
        assert wait_redirect(lab, m, both, 20) is not None, m
    by_halb = {
        m: lab.run(m, ["nft", "list", "table", "ip", REDIRECT_TABLE]).stdout for m in lab.masters
    }
    # the set's elements in any order
    assert {m: sorted(re.split(r"[\s,]+", t)) for m, t in by_ansible.items()} == {
        m: sorted(re.split(r"[\s,]+", t)) for m, t in by_halb.items()
    }


# Last in the module: it takes the deployment off the lab's hosts.
def test_undeploy_leaves_nothing_of_halb_and_a_second_one_is_a_no_op(six: Lab) -> None:
    def undeploy() -> dict[str, Any]:
        cp = six.run("taskbox", ["halb", "undeploy", "--json", "-c", str(six.spec)], timeout=180)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        return dict(json.loads(cp.stdout))

    t0 = time.monotonic()
    doc = undeploy()
    took = time.monotonic() - t0
    assert doc["changed"] is True
    for m in six.masters:
        h = doc["hosts"][m]
        assert h["status"] == "changed", h
        assert h["stop"] == ["keepalived", "haproxy"], h
        # the redirect and the VRRP filter (failback.sh's table only while it bridges)
        assert {f"ip {REDIRECT_TABLE}", f"inet {VRRP_TABLE}"} <= set(h["tables"]), h
        assert set(h["tables"]) <= {f"{f} {n}" for f, n in DEPLOYED_TABLES}, h
        # the lab's hosts start with this machine's stock /etc/haproxy: the first deploy
        # replaced its haproxy.cfg, and undeploy puts it back byte for byte
        stock = Path("/etc/haproxy/haproxy.cfg")
        if stock.is_file() and MANAGED_MARK not in stock.read_text():
            assert h["restore"] == [str(stock)], h
            assert six.run(m, ["cat", str(stock)]).stdout == stock.read_text()
        left = six.run(m, ["nft", "list", "tables"]).stdout
        for fam, name in DEPLOYED_TABLES:
            assert f"table {fam} {name}" not in left, f"{m}: {fam} {name} is left"
        # failback.sh's returning flags went with the scripts: the folder is gone
        assert six.run(m, ["test", "-e", SCRIPT_DIR]).returncode != 0, f"{m}: {SCRIPT_DIR}"
        for path in DEPLOYED_FILES:  # gone, or the file the first deploy replaced, back
            cp = six.run(m, ["cat", path])
            assert MANAGED_MARK not in cp.stdout, f"{m}: {path} is still halb's"
        for path in DEPLOYED_STATE:
            assert six.run(m, ["test", "-e", path]).returncode != 0, f"{m}: {path} is left"
        pids = six.run(m, pids_argv([(s.pidfile, s.comm) for s in SUPERVISED.values()]))
        assert pids.stdout.split() == ["-", "-"], pids.stdout
    assert six.vip_holders() == {six.vip_internal: [], six.vip_external: []}
    print(f"undeploy of 3 hosts: {took:.1f} s ({doc['seconds']:.1f} s inside halb)")
    again = undeploy()
    assert again["changed"] is False, again
    assert {h["status"] for h in again["hosts"].values()} == {"unchanged"}, again
