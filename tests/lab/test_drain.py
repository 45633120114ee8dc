"""`halb drain` / `halb undrain` on a real lab with the fast profile, under client load.

halb runs in the taskbox and reaches the LB hosts over SSH; the client in the taskbox
opens a new connection per request through both VIPs, each with a short timeout, for the
whole of each command. Drain and undrain move the VIPs as promised, with no outage, and
are idempotent; status shows the drained host.

"No outage" is asserted as: no request fails, and the longest gap between two successful
answers stays far below a SYN retransmit (1 s). Without the handover bridge
(halb/drain/handover.py) a connection in flight when the client's ARP entry moves would
be reset by the new holder, which has no socket for it: 1-5 per handover on this lab.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from halb.drain import handover
from halb.lab import Lab
from halb.services import SUPERVISED

pytestmark = pytest.mark.lab

CLIENT = Path(__file__).resolve().parents[2] / "bench" / "loadclient.py"
FLAG = "/etc/keepalived/halb/drained"


def halb(lab: Lab, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return lab.run("taskbox", ["halb", *args, "-c", str(lab.spec)], timeout=timeout)


def assert_no_outage(res: dict[str, Any]) -> None:
    assert min(res["ok"].values()) > 100, res["ok"]
    assert max(res["gap"].values()) < 0.6, res["gap"]
    assert res["failed"] == []


def assert_bridged(doc: dict[str, Any], old: str, taker: str) -> None:
    """The bridge was up from OLD's VIPs to TAKER, and nothing of it is left on any host."""
    b = doc["bridge"]
    assert b["up"] is True and b["skipped"] == [], b
    assert {(m["old"], tuple(m["takers"])) for m in b["moves"]} == {(old, (taker,))}
    assert len(b["moves"]) == 2 and b["sessions_left"] == 0, b


@contextmanager
def load(lab: Lab) -> Iterator[dict[str, Any]]:
    """Client load through both VIPs while the body runs; the result lands in the dict."""
    stop = lab.dir / "drain-load.stop"
    stop.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*lab.enter_argv("taskbox"), "python3", str(CLIENT), lab.vip_internal,
         lab.vip_external, str(stop), "--seconds", "90", "--timeout", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    result: dict[str, Any] = {}
    try:
        time.sleep(1.0)
        yield result
        time.sleep(1.0)
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=30)
    result.update(json.loads(out))


@pytest.fixture(scope="module")
def fast(lab: Lab) -> Lab:
    data = yaml.safe_load(lab.spec.read_text())
    data["vrrp"] = {"profile": "fast"}
    lab.spec.write_text(yaml.safe_dump(data, sort_keys=False))
    r = halb(lab, "deploy", timeout=180)
    assert r.returncode == 0, r.stderr
    assert lab.vip_holders() == {lab.vip_internal: ["lb1"], lab.vip_external: ["lb1"]}
    return lab


def test_drain_moves_every_vip_off_the_host_under_load_without_an_outage(fast: Lab) -> None:
    pids = lab_pids(fast, "lb1")
    with load(fast) as res:
        r = halb(fast, "drain", "lb1", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["changed"] is True and doc["host"] == "lb1" and doc["drained"] == ["lb1"]
    assert doc["holders"] == {"internal": ["lb2"], "external": ["lb2"]}
    assert fast.vip_holders() == {fast.vip_internal: ["lb2"], fast.vip_external: ["lb2"]}
    assert_no_outage(res)
    assert_bridged(doc, "lb1", "lb2")
    for h in ("lb1", "lb2"):
        assert_bridge_gone(fast, h)
    # HAProxy and keepalived on the drained host keep running, untouched
    assert lab_pids(fast, "lb1") == pids
    assert fast.run("lb1", ["test", "-f", FLAG]).returncode == 0


def test_status_shows_the_drained_host(fast: Lab) -> None:
    r = halb(fast, "status", "--json")
    assert r.returncode == 0, r.stdout
    hosts = {h["host"]: h for h in json.loads(r.stdout)["hosts"]}
    assert hosts["lb1"]["drained"] is True and hosts["lb2"]["drained"] is False
    assert hosts["lb1"]["vips"] == [] and hosts["lb1"]["haproxy_up"]
    text = halb(fast, "status").stdout
    assert "lb1 (drained): " in text and "lb2 (drained)" not in text


def test_drain_twice_changes_nothing(fast: Lab) -> None:
    r = halb(fast, "drain", "lb1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed"] is False
    assert json.loads(r.stdout)["bridge"] is None
    assert fast.vip_holders() == {fast.vip_internal: ["lb2"], fast.vip_external: ["lb2"]}


def test_draining_the_last_healthy_holder_is_refused(fast: Lab) -> None:
    r = halb(fast, "drain", "lb2")
    assert r.returncode == 1
    assert (
        "refusing to drain lb2: no healthy peer would take the VIPs from lb2 (lb1 is drained)"
        in r.stderr
    )
    assert "Traceback" not in r.stderr
    assert fast.run("lb2", ["test", "-e", FLAG]).returncode == 1  # nothing changed
    assert fast.vip_holders() == {fast.vip_internal: ["lb2"], fast.vip_external: ["lb2"]}


def wait_holders(lab: Lab, want: str, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if lab.vip_holders() == {lab.vip_internal: [want], lab.vip_external: [want]}:
            return True
        time.sleep(0.2)
    return False


def test_a_drained_host_still_takes_over_when_every_peer_is_gone(fast: Lab) -> None:
    """Drain lowers the priority, it does not remove the host: no VIP is left unheld."""
    # stop keepalived on the only peer and wait until it is gone (its pid file too)
    stop = 'p=$(cat /run/keepalived.pid); kill -TERM "$p"; while kill -0 "$p"; do sleep 0.1; done'
    fast.run("lb2", ["timeout", "20", "sh", "-c", stop], check=True)
    try:
        assert wait_holders(fast, "lb1", 10), fast.vip_holders()
    finally:
        start = '"$@" </dev/null >/var/log/halb/start-keepalived.log 2>&1'
        fast.run("lb2", ["sh", "-c", start, "sh", *SUPERVISED["keepalived"].start], check=True)
    # lb2 outranks the drained lb1 again and takes both VIPs back after the preempt delay
    assert wait_holders(fast, "lb2", 20), fast.vip_holders()
    assert fast.run("lb1", ["test", "-f", FLAG]).returncode == 0


def test_bad_host_is_exit_2_and_changes_nothing(fast: Lab) -> None:
    for args in (("drain", "master1"), ("undrain", "lb9")):
        r = halb(fast, *args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and f"host {args[1]}: not" in r.stderr


def test_undrain_brings_the_vips_back_under_load_without_an_outage(fast: Lab) -> None:
    with load(fast) as res:
        r = halb(fast, "undrain", "lb1", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["changed"] is True and doc["drained"] == []
    # failback policy: preemption after the delay, so lb1 (highest priority) holds both
    assert fast.vip_holders() == {fast.vip_internal: ["lb1"], fast.vip_external: ["lb1"]}
    assert_no_outage(res)
    assert_bridged(doc, "lb2", "lb1")
    for h in ("lb1", "lb2"):
        assert_bridge_gone(fast, h)
    assert fast.run("lb1", ["test", "-e", FLAG]).returncode == 1


def test_undrain_twice_changes_nothing(fast: Lab) -> None:
    r = halb(fast, "undrain", "lb1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed"] is False
    status = json.loads(halb(fast, "status", "--json").stdout)
    assert not any(h["drained"] for h in status["hosts"])


def lab_pids(lab: Lab, host: str) -> tuple[str, str]:
    r = lab.run(host, ["cat", "/run/haproxy.pid", "/run/keepalived.pid"])
    a, b = r.stdout.split()[:2]
    return a, b


def assert_bridge_gone(lab: Lab, host: str) -> None:
    """No bridge table and no timer left; the VIPs are kept local on lo (arp_ignore=1)
    exactly while the host is their MASTER (failback.sh, from keepalived's notify)."""
    script = (
        "nft list table ip halb_handover >/dev/null 2>&1 && echo table; "
        "nft list table ip halb_failback >/dev/null 2>&1 && echo table; "
        "ip route show table local dev lo | grep -c 'metric 1'; "
        "cat /proc/sys/net/ipv4/conf/eth0/arp_ignore; "
        "ls /run/halb/handover/*.timer 2>/dev/null; true"
    )
    holds = sum(host in h for h in lab.vip_holders().values())
    want = [str(holds), "1" if holds else "0"]
    deadline = time.monotonic() + 15  # a host that let go waits for idle frontends first
    while time.monotonic() < deadline:
        got = lab.run(host, ["sh", "-c", script]).stdout.split()
        if got == want:
            return
        time.sleep(0.5)
    assert got == want, host


def test_the_bridge_undoes_itself_on_the_hosts_when_halb_is_cut_off(fast: Lab) -> None:
    """Set up as a drain would, then never undo: the timer on the taker does it."""
    moves = [
        handover.Move(fast.vip_internal, "eth0", "lb2", fast.address("lb2"), ("lb1",)),
    ]
    fast.run("lb1", handover.forward_argv(moves, "lb1", 1), check=True)
    assert fast.run("lb1", ["nft", "list", "table", "ip", "halb_handover"]).returncode == 0
    time.sleep(3.5)  # the timer fires after 2 s
    for h in ("lb1", "lb2"):
        assert_bridge_gone(fast, h)
    assert fast.vip_holders() == {fast.vip_internal: ["lb1"], fast.vip_external: ["lb1"]}
