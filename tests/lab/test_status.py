"""`halb status` on a real lab after a deploy: holders, VRRP state, backend health, split
brain made by hand."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab


def status(lab: Lab) -> tuple[int, dict[str, Any], str]:
    r = lab.run("taskbox", ["halb", "status", "-c", str(lab.spec), "--json"], timeout=60)
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout), r.stderr


def backends(doc: dict[str, Any], frontend: str) -> dict[str, str]:
    """server -> status as the VIP holder's HAProxy sees it."""
    fe = next(f for f in doc["frontends"] if f["name"] == frontend)
    host = next(h for h in doc["hosts"] if h["host"] == fe["seen_from"])
    return {b["server"]: b["status"] for b in host["backends"] if b["frontend"] == frontend}


def wait_status(lab: Lab, want: Any, timeout: float = 15.0) -> tuple[int, dict[str, Any]]:
    """Poll `halb status` until want(rc, doc) holds (HAProxy needs fall × inter to mark)."""
    deadline = time.monotonic() + timeout
    while True:
        rc, doc, _ = status(lab)
        if want(rc, doc) or time.monotonic() > deadline:
            return rc, doc
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployed(lab: Lab) -> Lab:
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=120)
    assert r.returncode == 0, r.stderr
    return lab


def test_status_after_deploy_one_holder_per_vip_all_up(deployed: Lab) -> None:
    lab = deployed
    rc, doc, _ = status(lab)
    assert rc == 0 and doc["ok"], doc["problems"]
    vips = {v["address"]: v["holders"] for v in doc["vips"]}
    assert set(vips) == {lab.vip_internal, lab.vip_external}
    assert all(len(h) == 1 for h in vips.values()), vips
    holder = vips[lab.vip_internal][0]
    for h in doc["hosts"]:
        assert h["reachable"] and h["haproxy_up"] and h["keepalived_up"]
        want = "MASTER" if h["host"] == holder else "BACKUP"
        assert h["vrrp"]["halb_internal"] == want, h
        # the holder is the one whose HAProxy view counts
    assert all(fe["seen_from"] == holder for fe in doc["frontends"])
    assert set(backends(doc, "apiserver").values()) == {"UP"}
    assert set(backends(doc, "apiserver")) == set(lab.masters)
    assert set(backends(doc, "console").values()) == {"UP"}


def test_backend_down_is_reported_and_all_down_is_exit_1(deployed: Lab) -> None:
    lab = deployed
    first, *rest = lab.masters
    try:
        lab.set_readyz(first, 500)
        rc, doc = wait_status(lab, lambda rc, d: backends(d, "apiserver")[first] == "DOWN")
        assert backends(doc, "apiserver")[first] == "DOWN"
        assert all(backends(doc, "apiserver")[m] == "UP" for m in rest)
        assert rc == 0 and any(first in n for n in doc["notes"])
        for m in rest:
            lab.set_readyz(m, 500)
        rc, doc = wait_status(lab, lambda rc, d: rc == 1)
        assert rc == 1
        assert "frontend apiserver: no healthy backend" in " ".join(doc["problems"])
    finally:
        for m in lab.masters:
            lab.set_readyz(m, None)
    rc, _ = wait_status(lab, lambda rc, d: rc == 0)
    assert rc == 0


def test_split_brain_is_exit_1_and_names_both_hosts(deployed: Lab) -> None:
    lab = deployed
    _, doc, _ = status(lab)
    holder = next(v["holders"][0] for v in doc["vips"] if v["address"] == lab.vip_internal)
    other = next(h for h in lab.lbs if h != holder)
    add = ["ip", "addr", "add", f"{lab.vip_internal}/32", "dev", "eth0"]
    assert lab.run(other, add).returncode == 0
    try:
        rc, doc, _ = status(lab)
        text = lab.run("taskbox", ["halb", "status", "-c", str(lab.spec)])
    finally:
        lab.run(other, ["ip", "addr", "del", f"{lab.vip_internal}/32", "dev", "eth0"])
    assert rc == 1
    problem = next(p for p in doc["problems"] if "split brain" in p)
    assert holder in problem and other in problem and lab.vip_internal in problem
    assert text.returncode == 1 and "split brain" in text.stdout
    rc, doc, _ = status(lab)
    assert rc == 0, doc["problems"]


def test_stopped_haproxy_is_exit_1_and_deploy_starts_it_again(deployed: Lab) -> None:
    lab = deployed
    _, doc, _ = status(lab)
    holder = next(v["holders"][0] for v in doc["vips"] if v["address"] == lab.vip_internal)
    other = next(h for h in lab.lbs if h != holder)
    pid = lab.run(other, ["cat", "/run/haproxy.pid"]).stdout.strip()
    lab.run(other, ["kill", pid])
    try:
        rc, doc = wait_status(lab, lambda rc, d: rc == 1, timeout=5)
        assert f"{other}: HAProxy is not running" in doc["problems"]
        assert rc == 1
    finally:
        r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{other}: starting haproxy" in r.stdout
