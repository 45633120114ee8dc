"""Failback through the handover bridge, done by the LB hosts alone, under client load.

For each fault (link, kill, haproxy, graceful) and both profiles: the client in the
taskbox opens a new connection per request through both VIPs; the fault hits the holder
(lb1), the VIPs move to lb2, the fault is repaired, and lb1 comes back low (its
returning flag), waits until it has been healthy for `failback_hold`, bridges the move
(halb_failback on lb1, the VIPs kept local on lb2) and takes the VIPs back. halb does
not run during any of it: only the hosts' own keepalived, notify.sh and failback.sh.

Asserted: no request that started after the first outage fails in the failback, and
lb1 holds both VIPs again within the documented time (docs/profiles.md): failback_hold +
preempt_delay + HAProxy's rise x inter + 6 s. The first outage is the fault's own cost
and is not judged here. Without the bridge, 2-6 requests per failback were reset.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from halb.lab import Lab
from halb.services import start_argv

pytestmark = pytest.mark.lab

CLIENT = Path(__file__).resolve().parents[2] / "bench" / "loadclient.py"
GRACE = 3  # vrrp.failback_grace for these tests: the module runs in a few minutes
# failback_hold + preempt_delay + rise x inter (seconds), per profile (halb.spec.profiles)
RETURN_PARTS = {"default": 3 + 0 + 2 * 2, "fast": 2 + 3 + 2 * 1}
SLACK = 6  # the takeover, adverts, and a loaded machine (docs/profiles.md)

FAULTS: dict[str, tuple[str, str]] = {
    # inject, restore: shell run on the holder; a killed or stopped daemon's pids go to
    # PIDS, and its restart waits until they are gone
    "link": ("ip link set dev eth0 down", "ip link set dev eth0 up"),
    "kill": (
        "cat /run/keepalived.pid /run/keepalived_vrrp.pid /run/keepalived_checkers.pid "
        "> $0 2>/dev/null; kill -KILL $(cat $0)",
        "",
    ),
    "haproxy": (
        'p=$(cat /run/haproxy.pid); echo "$p" $(cat /proc/$p/task/$p/children) > $0; '
        "kill -KILL $(cat $0)",
        "",
    ),
    "graceful": ("cat /run/keepalived.pid > $0; kill -TERM $(cat $0)", ""),
}
PIDS = "/run/halb-test-failback.pids"
GONE = 'for p in $(cat "$0"); do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done'
SERVICE = {"kill": "keepalived", "haproxy": "haproxy", "graceful": "keepalived"}


def client(lab: Lab, internal: str, external: str, stop: Path) -> subprocess.Popen[str]:
    """bench/loadclient.py in the taskbox through the two VIPs: 4 threads, a new connection
    per request, 0.5 s timeout, for 60 s at most or until STOP exists; JSON on stdout."""
    argv = [str(CLIENT), internal, external, str(stop), "--seconds", "60", "--threads", "4"]
    argv += ["--timeout", "0.5", "--min-gap", "0.05"]
    return subprocess.Popen(
        [*lab.enter_argv("taskbox"), "python3", *argv], stdout=subprocess.PIPE, text=True
    )


def holders(lab: Lab) -> dict[str, list[str]]:
    return lab.vip_holders()


def wait_for(lab: Lab, want: str, limit: float) -> float | None:
    """Wall time when WANT holds both VIPs alone (None: not within LIMIT s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if holders(lab) == {lab.vip_internal: [want], lab.vip_external: [want]}:
            return time.time()
        time.sleep(0.1)
    return None


def wait_taken(lab: Lab, limit: float) -> bool:
    """lb2 holds both VIPs (a SIGKILLed keepalived leaves them on lb1 too until it starts)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all("lb2" in h for h in holders(lab).values()):
            return True
        time.sleep(0.1)
    return False


def assert_bridge_gone(lab: Lab) -> None:
    """No failback table on either host; lb2 no longer keeps the VIPs local and its
    arp_ignore is back (it waits for idle frontends, the grace at most; the poll is
    generous for a loaded machine)."""
    script = (
        "nft list table ip halb_failback >/dev/null 2>&1 && echo table; "
        "ip route show table local dev lo | grep -q 'metric 1' && echo route; "
        "cat /proc/sys/net/ipv4/conf/eth0/arp_ignore"
    )
    deadline = time.monotonic() + 20
    while True:
        left = {h: lab.run(h, ["sh", "-c", script]).stdout.split() for h in ("lb1", "lb2")}
        if left["lb2"] == ["0"] and "table" not in left["lb1"]:
            return
        if time.monotonic() > deadline:
            log = lab.run("lb2", ["tail", "-n", "20", "/var/log/halb/notify.log"]).stdout
            raise AssertionError(f"{left}\n{log}")
        time.sleep(0.5)


def deploy(lab: Lab, profile: str) -> None:
    data = yaml.safe_load(lab.spec.read_text())
    data["vrrp"] = {"profile": profile, "failback_grace": GRACE}
    lab.spec.write_text(yaml.safe_dump(data, sort_keys=False))
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=180)
    assert r.returncode == 0, r.stderr
    assert wait_for(lab, "lb1", 30), holders(lab)


@pytest.fixture(scope="module", params=["default", "fast"])
def profile(request: pytest.FixtureRequest, lab: Lab) -> str:
    deploy(lab, request.param)
    return str(request.param)


def failback_failures(res: dict[str, Any], back: float, home: float) -> list[dict[str, Any]]:
    """Requests that started after the first outage had ended (and after the repair,
    BACK) and up to a second after the old holder was home again (HOME)."""
    t0 = res["started"]
    start = back - t0
    for _fe, s, length in res["gaps"]:
        if s <= start <= s + length:
            start = max(start, s + length)  # the first outage still on at the repair
    return [f for f in res["failed"] if start <= f["t"] <= home + 1.0 - t0]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_failback_loses_no_request(lab: Lab, profile: str, fault: str) -> None:
    assert wait_for(lab, "lb1", 30), holders(lab)
    stop = lab.dir / "failback.stop"
    stop.unlink(missing_ok=True)
    proc = client(lab, lab.vip_internal, lab.vip_external, stop)
    inject, restore = FAULTS[fault]
    try:
        time.sleep(1.0)
        lab.run("lb1", ["sh", "-c", inject, PIDS], check=True)
        moved = wait_taken(lab, 20)
        time.sleep(0.5)
        back = time.time()
        if restore:
            lab.run("lb1", ["sh", "-c", restore], check=True)
        else:
            lab.run("lb1", ["timeout", "20", "sh", "-c", GONE, PIDS], check=True)
            lab.run("lb1", start_argv(SERVICE[fault]), check=True, timeout=60)
        limit = RETURN_PARTS[profile] + SLACK
        home = wait_for(lab, "lb1", limit + 20)
        time.sleep(GRACE + 1.0)  # the bridge comes down under load too
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=60)
        lab.run("lb1", ["sh", "-c", FAULTS["link"][1]])  # never leave lb1 cut off
    res = json.loads(out)
    assert moved, f"{fault}: the VIPs never moved to lb2"
    assert home is not None, holders(lab)
    log = lab.run("lb1", ["tail", "-n", "30", "/var/log/halb/notify.log"]).stdout
    assert home - back <= limit, (round(home - back, 2), log)
    assert min(res["ok"].values()) > 50, res["ok"]
    assert failback_failures(res, back, home) == [], log
    # the bridge went up on lb1 and came down again on both hosts
    assert "bridge to the holder" in log, log
    assert_bridge_gone(lab)
    assert lab.run("lb1", ["cat", "/etc/keepalived/halb/returning-halb_internal"]).stdout == "0\n"


@pytest.mark.parametrize("prof", ["default", "fast"])
def test_a_first_deploy_clears_no_flag_before_a_holder_is_heard(lab_factory, prof: str) -> None:  # type: ignore[no-untyped-def]
    """keepalived starts on every host at once, each flagged as returning, and nobody holds
    the VIPs while the agents wait out their hold. An agent that heard no holder used to
    clear its flag, and its host could then take the VIPs only to lose them to lb1 again;
    now it waits until a holder is heard (or its host becomes MASTER by VRRP's own
    election, which may pick either host for a moment when both start together). In the
    end lb1 holds both VIPs with its flags cleared, and lb2 is a standby with its set."""
    fresh = lab_factory(lbs=2, masters=1, nodes=1)
    deploy(fresh, prof)
    # every agent is done by then: one that cleared its flag on a holder's first, lowered
    # adverts has seen it stay BACKUP for WAIT_CS and put the flag back
    time.sleep(RETURN_PARTS[prof] + SLACK + 6)
    assert wait_for(fresh, "lb1", 1), holders(fresh)
    logs = {h: fresh.run(h, ["cat", "/var/log/halb/notify.log"]).stdout for h in fresh.lbs}
    flags = "cat /etc/keepalived/halb/returning-halb_internal " + (
        "/etc/keepalived/halb/returning-halb_external"
    )
    # the holder's flags are cleared; the backup stays low (a standby: failback.sh)
    want = {"lb1": "0\n0\n", "lb2": "1\n1\n"}
    for h in fresh.lbs:
        assert fresh.run(h, ["sh", "-c", flags]).stdout == want[h], logs
        lines = logs[h].splitlines()
        for i, line in enumerate(lines):
            if "returning flag cleared" in line:  # by the agent: only once a holder is heard
                heard = "\n".join(lines[:i])
                assert "outranks this host" in heard or "bridge to the holder" in heard, logs
