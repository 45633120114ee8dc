"""`halb test-failover` on a real lab: every fault on the VIP holder, run from the taskbox.

One drill runs every fault once (default profile); the tests read its JSON, its picture
and the hosts afterwards. A second, short drill checks the gate with an impossible budget.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from halb.drill.plot import BLUE, GREEN, ORANGE, PINK, RED
from halb.lab import Lab

pytestmark = pytest.mark.lab

FIGURE_KEYS = {
    "takeover_s",
    "new_holder",
    "outage_s",
    "second_outage_s",
    "failed",
    "errors",
    "old_holder_answers",
    "max_holders",
    "holders_end",
    "vip_moved",
    "garps_after_restore",
}


def drill(lab: Lab, *args: str, timeout: float = 240) -> tuple[int, str, str]:
    r = lab.run("taskbox", ["halb", "test-failover", "-c", str(lab.spec), *args], timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def deployed(lab: Lab) -> Lab:
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=120)
    assert r.returncode == 0, r.stderr
    return lab


@pytest.fixture(scope="module")
def all_faults(deployed: Lab) -> dict[str, Any]:
    lab = deployed
    js, png = lab.dir / "drill.json", lab.dir / "drill.png"
    # 50 probes/s per frontend (20 ms resolution) keeps the lab's 2 cores for the daemons
    rc, out, err = drill(
        lab, "--fault", "all", "--rate", "50", "--json", str(js), "--plot", str(png)
    )
    assert rc == 0, out + err
    doc = json.loads(js.read_text())
    doc["_stdout"] = out
    doc["_png"] = png.read_bytes()
    return doc


def rounds_of(doc: dict[str, Any], fault: str) -> list[dict[str, Any]]:
    return [r for r in doc["rounds"] if r["fault"] == fault]


def other(lab: Lab, host: str) -> str:
    return next(h for h in lab.lbs if h != host)


@pytest.mark.parametrize("fault", ["graceful", "kill", "haproxy", "link"])
def test_vip_moves_to_the_peer_and_one_holder_at_the_end(
    deployed: Lab, all_faults: dict[str, Any], fault: str
) -> None:
    lab = deployed
    (r,) = rounds_of(all_faults, fault)
    f = r["figures"]
    assert set(f) >= FIGURE_KEYS
    assert r["target"] in lab.lbs
    assert f["vip_moved"] and f["new_holder"] == other(lab, r["target"]), f
    assert f["takeover_s"] is not None and 0 < f["takeover_s"] < 10
    assert all(len(h) == 1 for h in f["holders_end"].values()), f["holders_end"]
    for fe in ("apiserver", "console"):
        # the client saw the failover: a gap, and answers again before the round ended
        assert 0 < f["outage_s"][fe] < 10
        assert f["probes"][fe] > 300
    # every timestamp is there: probes, packets (adverts and GARPs from both hosts)
    assert r["t_start"] < r["t_fault"] < r["t_restore"] < r["t_end"]
    kinds = {p["kind"] for p in r["packets"]}
    assert {"advert", "garp", "synack"} <= kinds
    assert f["old_holder_answers"] is not None  # the taskbox's capture saw the SYN-ACKs


def test_graceful_takeover_costs_only_the_skew(all_faults: dict[str, Any]) -> None:
    (r,) = rounds_of(all_faults, "graceful")
    f = r["figures"]
    # a priority-0 advert, then the backup's skew (256 - 230) / 256 s at advert 1 s
    zero = [p for p in r["packets"] if p["kind"] == "advert" and p.get("prio") == 0]
    assert zero and zero[0]["ts"] - r["t_fault"] < 0.2
    assert f["takeover_s"] == pytest.approx((256 - 230) / 256, abs=0.2)


def test_haproxy_exit_moves_the_vip_without_waiting_for_a_check(
    all_faults: dict[str, Any],
) -> None:
    (r,) = rounds_of(all_faults, "haproxy")
    # the supervisor's watcher writes the exit file at once and keepalived goes to FAULT:
    # the skew of a graceful stop (0.1 s), where the check script alone needs at least
    # one interval (1 s) and then the skew
    assert r["figures"]["takeover_s"] < 0.9, r["figures"]


def test_partition_is_split_brain_then_one_holder(all_faults: dict[str, Any]) -> None:
    (r,) = rounds_of(all_faults, "partition")
    f = r["figures"]
    assert f["max_holders"] == {"internal": 2, "external": 2}
    assert any(all(len(h) == 2 for h in p["holders"].values()) for p in r["polls"])
    assert all(len(h) == 1 for h in f["holders_end"].values())


def test_partition_heals_with_fresh_garps(all_faults: dict[str, Any]) -> None:
    # vrrp_higher_prio_send_advert + vrrp_garp_lower_prio_repeat in the rendered config
    (r,) = rounds_of(all_faults, "partition")
    assert r["figures"]["garps_after_restore"] > 0


def test_apiserver_fault_fails_the_apiserver_only_and_the_vip_stays(
    all_faults: dict[str, Any],
) -> None:
    (r,) = rounds_of(all_faults, "apiserver")
    f = r["figures"]
    assert not f["vip_moved"] and f["takeover_s"] is None
    assert f["errors"]["apiserver"].get("http 500", 0) > 30
    assert f["failed"]["console"] == 0
    assert all(h == [r["target"]] for h in f["holders_end"].values())


def test_table_and_json_summary(all_faults: dict[str, Any]) -> None:
    faults = {row["fault"] for row in all_faults["table"]}
    assert faults == {"graceful", "kill", "haproxy", "link", "partition", "apiserver"}
    assert all_faults["ok"] is True and all_faults["problems"] == []
    assert "outage p50" in all_faults["_stdout"]


def test_everything_is_restored_after_the_drill(deployed: Lab, all_faults: dict[str, Any]) -> None:
    lab = deployed
    r = lab.run("taskbox", ["halb", "status", "-c", str(lab.spec), "--json"], timeout=60)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], doc["problems"]
    for lb in lab.lbs:
        assert "state UP" in lab.run(lb, ["ip", "link", "show", "eth0"]).stdout
        assert lab.run(lb, ["nft", "list", "table", "inet", "halb_drill"]).returncode != 0
        assert lab.run(lb, ["sh", "-c", "ls /run/halb-drill | grep -c timer"]).stdout.strip() in (
            "",
            "0",
        )
    for m in lab.masters:
        assert not (lab.host_dir(m) / "run" / "halb-lab" / "readyz").exists()


def png_colours(data: bytes) -> set[bytes]:
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w = struct.unpack(">I", body[:4])[0]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + 3 * w
    return {raw[i : i + 3] for r in range(0, len(raw), stride) for i in range(r + 1, r + stride, 3)}


def test_plot_has_requests_failures_fault_adverts_and_garps(all_faults: dict[str, Any]) -> None:
    data = all_faults["_png"]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    colours = png_colours(data)
    for c in (GREEN, RED, PINK, BLUE, ORANGE):
        assert bytes(c) in colours


def test_gate_exits_1_on_an_impossible_budget(deployed: Lab, tmp_path: Path) -> None:
    lab = deployed
    rc, out, err = drill(lab, "--fault", "graceful", "--max-outage", "0.001")
    assert rc == 1, out + err
    assert "FAILED: graceful round 1: apiserver outage" in err
    assert "> --max-outage 0.001 s" in err


def test_ctrl_c_during_a_partition_restores_it(deployed: Lab) -> None:
    lab = deployed
    proc = subprocess.Popen(
        [*lab.enter_argv("taskbox"), "halb", "test-failover", "-c", str(lab.spec),
         "--fault", "partition"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        table = ["nft", "list", "table", "inet", "halb_drill"]
        while lab.run(lab.lbs[0], table).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    for lb in lab.lbs:
        assert lab.run(lb, table).returncode != 0, f"{lb} still drops VRRP"
    deadline = time.monotonic() + 20
    while True:
        r = lab.run("taskbox", ["halb", "status", "-c", str(lab.spec), "--json"], timeout=60)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.returncode == 0, json.loads(r.stdout)["problems"]


def test_two_holders_before_the_drill_is_exit_1_and_nothing_injected(deployed: Lab) -> None:
    lab = deployed
    r = lab.run("taskbox", ["halb", "status", "-c", str(lab.spec), "--json"], timeout=60)
    holder = next(v["holders"][0] for v in json.loads(r.stdout)["vips"] if v["name"] == "internal")
    peer = other(lab, holder)
    vip = f"{lab.vip_internal}/32"
    assert lab.run(peer, ["ip", "addr", "add", vip, "dev", "eth0"]).returncode == 0
    try:
        rc, out, err = drill(lab, "--fault", "graceful")
        pid = lab.run(holder, ["cat", "/run/keepalived.pid"]).stdout.strip()
        alive = lab.run(holder, ["kill", "-0", pid]).returncode == 0
    finally:
        lab.run(peer, ["ip", "addr", "del", vip, "dev", "eth0"])
    assert rc == 1, out + err
    assert f"split brain: VIP internal ({lab.vip_internal}) is held by" in err
    assert holder in err and peer in err
    assert alive  # the drill stopped before any fault
