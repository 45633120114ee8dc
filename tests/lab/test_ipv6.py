"""A dual-stack lab (`--ip-family dual`: unique-local IPv6 beside IPv4 on every host, in
the lab's namespaces only): preflight refuses an IPv6 VIP that another host answers for
(neighbour discovery), `halb up` runs end to end, both VIPs of each frontend answer with
every backend behind them, and status and probe JSON carry each VIP's family."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from halb.lab import Lab
from halb.lab.netns import root_networks

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(lab_factory: Any) -> Lab:
    return lab_factory(lbs=2, masters=2, nodes=2, ip_family="dual")


def halb(lab: Lab, *args: str, timeout: float = 180) -> tuple[int, dict[str, Any], str]:
    p = lab.run("taskbox", ["halb", *args, "--json", "-c", str(lab.spec)], timeout=timeout)
    doc = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
    return p.returncode, doc, p.stdout + p.stderr


def six(lab: Lab) -> dict[str, str]:
    assert lab.plan.vip_internal6 and lab.plan.vip_external6
    return {"internal": lab.plan.vip_internal6, "external": lab.plan.vip_external6}


def curl(lab: Lab, url: str) -> subprocess.CompletedProcess[str]:
    return lab.run("taskbox", ["curl", "-gsk", "-m", "3", url])


def test_ipv6_lives_in_the_lab_namespaces_only(lab: Lab) -> None:
    assert lab.plan.subnet6 is not None
    prefix = lab.plan.subnet6.split("::")[0] + ":"
    assert not [n for n in root_networks(6) if n.startswith(prefix)]
    for h in lab.plan.hosts:
        shown = lab.run(h.name, ["ip", "-o", "-6", "addr", "show", "dev", "eth0"]).stdout
        assert f" {h.address6}/64 " in shown, shown
    text = lab.inventory.read_text()
    assert f"ip={lab.address('lb1')} ip6={lab.plan.host('lb1').address6}" in text
    assert f'address6: "{six(lab)["internal"]}"' in lab.spec.read_text()


def test_preflight_refuses_an_ipv6_vip_answered_over_ndp(lab: Lab) -> None:
    vip6 = six(lab)["internal"]
    lab.run("node1", ["ip", "addr", "add", f"{vip6}/64", "dev", "eth0", "nodad"], check=True)
    try:
        rc, doc, out = halb(lab, "preflight", timeout=120)
    finally:
        lab.run("node1", ["ip", "addr", "del", f"{vip6}/64", "dev", "eth0"])
    assert rc == 2, out
    fails = [c for c in doc["checks"] if c["level"] == "fail"]
    (f,) = [c for c in fails if c["check"] == "vip-ndp"]
    assert f["host"] == "node1", f
    assert f"VIP {vip6} is already in use: node1 ({lab.address('node1')}," in f["message"]
    assert "answers neighbour solicitations" in f["message"]
    # the IPv4 VIPs and the other IPv6 one are free
    oks = {c["message"] for c in doc["checks"] if c["check"] in ("vip-arp", "vip-ndp")}
    assert f"no other host answers neighbour solicitations for {six(lab)['external']}" in oks
    assert f"no other host answers ARP for {lab.vip_internal}" in oks


def test_up_serves_every_backend_through_both_families(lab: Lab) -> None:
    rc, doc, out = halb(lab, "up")
    assert rc == 0, out
    stages = {s["stage"]: s["status"] for s in doc["stages"]}
    assert stages["preflight"] == "ok" and stages["deploy"] == "changed", stages
    assert stages["verify"] == "ok", stages
    # the installer (KubeSphere 2.1) gets the IPv4 endpoint of the dual-stack VIP
    assert f"address: {lab.vip_internal}" in (lab.dir / "conf/common.yaml").read_text()

    for vip in (lab.vip_internal, f"[{six(lab)['internal']}]"):
        seen = {curl(lab, f"https://{vip}:6443/halb-lab/name").stdout for _ in range(8)}
        assert seen == {f"apiserver {m}\n" for m in lab.masters}, (vip, seen)
    for vip in (lab.vip_external, f"[{six(lab)['external']}]"):
        seen = {curl(lab, f"http://{vip}:30880/").stdout.split()[1] for _ in range(16)}
        assert seen == set(lab.masters) | set(lab.nodes), (vip, seen)

    # each VIP, per family, is held by exactly one LB host
    rc, status, out = halb(lab, "status")
    assert rc == 0, out
    got = {(v["name"], v["family"], v["address"]): v["holders"] for v in status["vips"]}
    assert set(got) == {
        ("internal", 4, lab.vip_internal),
        ("internal", 6, six(lab)["internal"]),
        ("external", 4, lab.vip_external),
        ("external", 6, six(lab)["external"]),
    }
    assert all(len(h) == 1 for h in got.values()), got
    holder = got[("internal", 6, six(lab)["internal"])][0]
    (host,) = [h for h in status["hosts"] if h["host"] == holder]
    assert host["vrrp"]["halb_internal6"] == "MASTER" and "internal6" in host["vips"]

    rc, probe, out = halb(lab, "probe")
    assert rc == 0, out
    for fe in probe["frontends"]:
        assert fe["through_vip"]["family"] == 4 and fe["through_vip"]["healthy"], fe
        assert fe["through_vip6"]["family"] == 6 and fe["through_vip6"]["healthy"], fe
        assert fe["through_vip6"]["address"] == six(lab)[fe["vip"]]


def test_preflight_hears_our_vrrpv3_adverts_over_ipv6(lab: Lab) -> None:
    """With keepalived running, the adverts of the IPv6 instances (VRRPv3, unicast from
    the LB hosts' ip6) are heard and known as ours; nothing is foreign."""
    rc, doc, out = halb(lab, "preflight", timeout=120)
    assert rc == 0, out
    vrrp = [c for c in doc["checks"] if c["check"] == "vrrp"]
    assert vrrp and all(c["level"] == "ok" for c in vrrp), vrrp
    mine = " ".join(c["message"] for c in vrrp)
    assert f"carry VIP {six(lab)['internal']} (our keepalived)" in mine, vrrp
    assert f"carry VIP {lab.vip_internal} (our keepalived)" in mine, vrrp


def test_drain_under_ipv6_load_bridges_both_families(lab: Lab) -> None:
    """A drain moves all four VIPs with the handover bridge (nftables ip and ip6) up from
    the old holder to the taker, while a client keeps opening connections to both IPv6
    VIPs: none fails."""
    rc, status, _ = halb(lab, "status")
    assert rc == 0
    old = {(v["name"], v["family"]): v["holders"] for v in status["vips"]}[("internal", 6)][0]
    other = next(lb for lb in lab.lbs if lb != old)
    client, stop = lab.dir / "load6.py", lab.dir / "load6.stop"
    client.write_text((Path(__file__).parent / "load_client.py").read_text())
    stop.unlink(missing_ok=True)
    argv = ["python3", str(client), six(lab)["internal"], six(lab)["external"], str(stop)]
    load = subprocess.Popen([*lab.enter_argv("taskbox"), *argv], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        p = lab.run("taskbox", ["halb", "drain", old, "--json", "-c", str(lab.spec)], timeout=120)
        time.sleep(1.0)
    finally:
        stop.touch()
        out, _ = load.communicate(timeout=90)
    res = json.loads(out)
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        doc = json.loads(p.stdout)
        assert doc["holders"] == {
            "internal": [other],
            "internal6": [other],
            "external": [other],
            "external6": [other],
        }, doc["holders"]
        b = doc["bridge"]
        assert b["up"] is True and b["skipped"] == [] and b["sessions_left"] == 0, b
        assert {m["address"] for m in b["moves"]} == {
            lab.vip_internal,
            lab.vip_external,
            *six(lab).values(),
        }, b
        assert "without the handover bridge" not in p.stderr
        assert res["failed"] == [] and res["ok"] > 20, res
        gone = (
            "nft list table ip halb_handover >/dev/null 2>&1 && echo table; "
            "nft list table ip6 halb_handover6 >/dev/null 2>&1 && echo table6; "
            "ip route show table local dev lo | grep -q 'metric 1' && echo route; "
            "ip -6 route show table local dev lo | grep -q 'metric 1' && echo route6; "
            "ls /run/halb/handover/*.timer 2>/dev/null; true"
        )
        for h in lab.lbs:  # nothing of the bridge is left on either host
            # but the new holder keeps its VIPs of both families on lo while MASTER
            # (failback.sh)
            want = ["route", "route6"] if h == other else []
            assert lab.run(h, ["sh", "-c", gone]).stdout.split() == want, h
    finally:
        u = lab.run("taskbox", ["halb", "undrain", old, "-c", str(lab.spec)], timeout=120)
        assert u.returncode == 0, u.stdout + u.stderr


def test_ipv6_vip_moves_when_its_holder_stops_keepalived(lab: Lab) -> None:
    rc, status, _ = halb(lab, "status")
    assert rc == 0
    holders = {(v["name"], v["family"]): v["holders"] for v in status["vips"]}
    old = holders[("internal", 6)][0]
    lab.run(old, ["sh", "-c", "kill $(cat /run/keepalived.pid)"], check=True)
    try:
        moved: list[str] = []
        for _ in range(30):  # bounded: 30 looks, a VRRPv2 profile's master-down is ~3 s
            rc, status, _ = halb(lab, "status", timeout=60)
            now = {(v["name"], v["family"]): v["holders"] for v in status["vips"]}
            moved = now[("internal", 6)]
            if moved and old not in moved:
                break
        assert moved and old not in moved and len(moved) == 1, moved
        url = f"https://[{six(lab)['internal']}]:6443/readyz"
        assert curl(lab, url).stdout == "ok"
    finally:
        halb(lab, "deploy", timeout=180)  # keepalived back on the old holder
