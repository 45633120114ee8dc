"""A hostile host on the segment, on a real lab: node1 sends forged VRRP adverts and
gratuitous ARP for the VIPs (the drill's rogue faults) at LB hosts running halb's VRRP
filter; a replaced NIC on an LB host is a preflight failure before anything is applied.

The figures (10 rounds each, before and after) are in bench/README.md; here one round of
each kind is enough to prove the defence and the detection.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab


def halb(lab: Lab, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = lab.run("taskbox", ["halb", *args, "-c", str(lab.spec)], timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def mac(lab: Lab, host: str) -> str:
    return lab.run(host, ["cat", "/sys/class/net/eth0/address"], check=True).stdout.strip()


def table(lab: Lab, host: str) -> str:
    return lab.run(host, ["nft", "list", "table", "inet", "halb_vrrp"], check=True).stdout


def peers(lab: Lab, host: str) -> str:
    """The pairs the host's filter accepts (the rest of the table counts and expires)."""
    argv = ["nft", "list", "set", "inet", "halb_vrrp", "peers4"]
    return lab.run(host, argv, check=True).stdout


@pytest.fixture(scope="module")
def deployed(lab_factory) -> Lab:  # type: ignore[no-untyped-def]
    lab = lab_factory(lbs=2, masters=1, nodes=1)
    r = halb(lab, "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    return lab


def test_each_lb_host_accepts_only_its_peers_pair(deployed: Lab) -> None:
    lab = deployed
    lb1, lb2 = lab.lbs
    assert f"{lab.address(lb2)} . {mac(lab, lb2)}" in table(lab, lb1)
    assert f"{lab.address(lb1)} . {mac(lab, lb1)}" in table(lab, lb2)
    r = halb(lab, "status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vrrp filter active, 1 peer(s), nothing dropped" in r.stdout


def test_forged_adverts_cost_nothing_and_status_names_the_rogue(deployed: Lab) -> None:
    lab = deployed
    js = lab.dir / "rogue.json"
    r = halb(
        lab, "test-failover", "--fault", "rogue-vrrp-forged,rogue-vrrp-v3", "--rate", "20",
        "--json", str(js), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    doc: dict[str, Any] = json.loads(js.read_text())
    assert [x["fault"] for x in doc["rounds"]] == ["rogue-vrrp-forged", "rogue-vrrp-v3"]
    for rnd in doc["rounds"]:
        fig = rnd["figures"]
        assert sum(fig["failed"].values()) == 0, fig
        assert not fig["vip_moved"], fig
        # the holder never let go (a poll that timed out on this loaded machine says none)
        seen = {h for p in rnd["polls"] for hs in p["holders"].values() for h in hs}
        assert seen == {rnd["target"]}, seen
    st = halb(lab, "status", "--json")
    assert st.returncode == 1
    rep = json.loads(st.stdout)
    rogue = mac(lab, lab.nodes[-1])
    seen = [i for i in rep["intruders"] if i["kind"] == "vrrp"]
    assert {i["mac"] for i in seen} == {rogue}
    assert {i["seen_by"] for i in seen} == set(lab.lbs)  # both heard it, both dropped it
    assert all(i["packets"] > 0 for i in seen)
    assert any("forged" in p and rogue in p for p in rep["problems"])


def test_arp_spoof_is_reported_while_it_lasts(deployed: Lab) -> None:
    lab = deployed
    js = lab.dir / "arp.json"
    drill = subprocess.Popen(
        [*lab.enter_argv("taskbox"), "halb", "test-failover", "-c", str(lab.spec),
         "--fault", "arp-spoof", "--rate", "20", "--json", str(js)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    rogue = mac(lab, lab.nodes[-1])
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and drill.poll() is None:
            rep = json.loads(halb(lab, "status", "--json").stdout)
            problems = [
                i["text"] for i in rep["intruders"] if i["kind"] == "arp" and i["mac"] == rogue
            ]
            if problems:
                break
            time.sleep(0.5)
    finally:
        _, err = drill.communicate(timeout=300)
    assert problems, "status never saw the spoofed VIP"
    assert any("this host" in p and "ARP spoofing" in p for p in problems), problems
    assert "Traceback" not in err, err
    fig = json.loads(js.read_text())["rounds"][0]["figures"]
    assert max(fig["outage_s"].values()) > 0  # measured (bench/README.md has the figures)


def test_a_replaced_nic_is_a_preflight_failure_before_anything_is_applied(deployed: Lab) -> None:
    lab = deployed
    lb1, lb2 = lab.lbs
    old = mac(lab, lb2)
    new = "02:00:00:5e:23:02"
    lab.run(lb2, ["ip", "link", "set", "eth0", "address", new], check=True)
    before = peers(lab, lb1)
    r = halb(lab, "preflight", timeout=180)
    assert r.returncode != 0
    said = r.stdout + r.stderr
    assert f"the MAC of {lb2}'s eth0 is {new} now, but {lb1}'s VRRP filter" in said
    assert old in said
    assert peers(lab, lb1) == before and old in before  # nothing applied
    # the next deploy learns the new MAC, and preflight is content again
    r = halb(lab, "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{lab.address(lb2)} . {new}" in peers(lab, lb1)
    r = halb(lab, "preflight", timeout=180)
    assert "vrrp-filter" in r.stdout and f"the MAC of {lb2}" not in r.stdout + r.stderr


def test_a_filter_the_host_lost_is_shown_and_loaded_by_the_next_deploy(deployed: Lab) -> None:
    """A reboot drops the table with its file unchanged: status says so, and the next
    deploy loads it again on that host alone."""
    lab = deployed
    lb1, lb2 = lab.lbs
    pairs = peers(lab, lb1)
    lab.run(lb1, ["nft", "delete", "table", "inet", "halb_vrrp"], check=True)
    r = halb(lab, "status")
    assert "vrrp filter absent" in r.stdout, r.stdout
    r = halb(lab, "deploy", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    hosts = json.loads(r.stdout)["hosts"]
    assert hosts[lb1]["status"] == "changed" and hosts[lb2]["status"] == "unchanged", hosts
    assert peers(lab, lb1) == pairs and "drop" in table(lab, lb1)  # the same file again
    again = json.loads(halb(lab, "deploy", "--json").stdout)["hosts"]
    assert {h["status"] for h in again.values()} == {"unchanged"}, again
