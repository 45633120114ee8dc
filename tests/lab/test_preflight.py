"""`halb preflight` on a real lab: a clean run and the four bad environments (exit 2)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from halb.lab import Lab
from halb.spec import load_cluster

pytestmark = pytest.mark.lab


def _preflight(lab: Lab, spec: Path | None = None) -> tuple[int, dict[str, Any], str]:
    argv = ["halb", "preflight", "--json", "-c", str(spec or lab.spec)]
    p = lab.run("taskbox", argv, timeout=120)
    assert p.stdout, p.stderr
    return p.returncode, json.loads(p.stdout), p.stderr


def _fails(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in doc["checks"] if c["level"] == "fail"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def spawn(lab: Lab) -> Iterator[Any]:
    """Start a process inside a lab host; every one is stopped at the end of the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(host: str, argv: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [*lab.enter_argv(host), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        procs.append(p)
        return p

    try:
        yield start
    finally:
        for p in procs:
            _stop(p)


def test_clean_lab_passes(lab: Lab) -> None:
    rc, doc, err = _preflight(lab)
    assert rc == 0, err
    assert not _fails(doc)
    checks = {c["check"] for c in doc["checks"]}
    assert {"ssh", "sudo", "interface", "vip-arp", "vrrp", "ports", "firewall"} <= checks


def test_foreign_vrrp_speaker_on_our_router_id(lab: Lab, spawn: Any, tmp_path: Path) -> None:
    rid = next(v.router_id for v in load_cluster(lab.spec).vips if v.name == "internal")
    foreign_vip = lab.subnet.rsplit(".", 1)[0] + ".250"
    conf = tmp_path / "foreign.conf"
    conf.write_text(
        "global_defs { router_id foreign }\n"
        "vrrp_instance FOREIGN {\n  state MASTER\n  interface eth0\n"
        f"  virtual_router_id {rid}\n  priority 200\n  advert_int 1\n"
        f"  virtual_ipaddress {{ {foreign_vip}/24 }}\n}}\n"
    )
    ka = spawn(
        "node2",
        ["keepalived", "-n", "-l", "-P", "-f", str(conf),
         "-p", str(tmp_path / "ka.pid"), "-r", str(tmp_path / "vrrp.pid")],
    )  # fmt: skip
    time.sleep(1.5)
    assert ka.poll() is None, ka.stderr.read() if ka.stderr else ""
    rc, doc, err = _preflight(lab)
    assert rc == 2
    (f,) = [c for c in _fails(doc) if c["check"] == "vrrp"]
    assert f["host"] == "node2" and f["bad_input"]
    assert f"router id {rid} is already in use: node2 ({lab.address('node2')})" in f["message"]
    assert "node2" in err


def test_host_already_holding_the_vip(lab: Lab) -> None:
    vip = lab.vip_internal
    lab.run("node1", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], check=True)
    try:
        rc, doc, err = _preflight(lab)
    finally:
        lab.run("node1", ["ip", "addr", "del", f"{vip}/24", "dev", "eth0"])
    assert rc == 2
    (f,) = [c for c in _fails(doc) if c["check"] == "vip-arp"]
    assert f["host"] == "node1"
    assert f"VIP {vip} is already in use: node1 ({lab.address('node1')}," in f["message"]
    assert "node1" in err


def test_missing_interface(lab: Lab) -> None:
    spec = lab.dir / "halb-eth9.yaml"
    spec.write_text(lab.spec.read_text().replace("interface: eth0", "interface: eth9"))
    try:
        rc, doc, err = _preflight(lab, spec)
    finally:
        spec.unlink()
    assert rc == 2
    fails = [c for c in _fails(doc) if c["check"] == "interface"]
    assert sorted(c["host"] for c in fails) == ["lb1", "lb2"]
    assert "interface eth9 not found on lb1 (interfaces: lo, eth0)" in err


def test_port_already_bound(lab: Lab, spawn: Any) -> None:
    listener = (
        "import socket,time\ns=socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.bind(('0.0.0.0',6443))\ns.listen()\nprint('up',flush=True)\ntime.sleep(120)\n"
    )
    p = spawn("lb1", ["python3", "-c", listener])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ss = lab.run("lb1", ["ss", "-Htln", "sport = :6443"]).stdout
        if ":6443" in ss:
            break
        assert p.poll() is None
        time.sleep(0.1)
    rc, doc, err = _preflight(lab)
    assert rc == 2
    (f,) = [c for c in _fails(doc) if c["check"] == "ports"]
    assert f["host"] == "lb1"
    assert "on lb1 already listens on 0.0.0.0:6443" in f["message"]
    assert "lb1" in err


def test_a_firewall_that_drops_vrrp_is_shown_then_opened_only_with_the_flag(lab: Lab) -> None:
    """An nft table in lb1's own namespace drops VRRP: preflight fails, prints the rules
    --open-firewall adds and changes nothing; with the flag it prints them, adds them,
    and says so."""
    table = "halb_test_fw"
    rules = (
        f"add table inet {table}\n"
        f"add chain inet {table} input {{ type filter hook input priority 0; policy accept; }}\n"
        f"add rule inet {table} input ip protocol vrrp drop\n"
    )
    lab.run("lb1", ["nft", "-f", "-"], input=rules, check=True)
    lb2 = lab.address("lb2")
    try:
        rc, doc, err = _preflight(lab)
        assert rc == 1
        (f,) = [c for c in _fails(doc) if c["check"] == "firewall"]
        assert f["host"] == "lb1" and "drops VRRP" in f["message"]
        want = f"lb1: nft insert rule inet {table} input ip saddr {lb2} ip protocol vrrp accept"
        assert "--open-firewall would run:" in err and want in err, err
        ruleset = lab.run("lb1", ["nft", "list", "table", "inet", table]).stdout
        assert "accept" not in ruleset.replace("policy accept", "")  # nothing changed

        p = lab.run(
            "taskbox",
            ["halb", "preflight", "--json", "--open-firewall", "-c", str(lab.spec)],
            timeout=120,
        )
        assert "opening VRRP:" in p.stderr and want in p.stderr, p.stderr
        opened = [c for c in json.loads(p.stdout)["checks"] if c["check"] == "firewall"]
        lb1 = [c for c in opened if c["host"] == "lb1"]
        assert [c["level"] for c in lb1] == ["ok"], lb1
        assert lb1[0]["message"].startswith("opened VRRP (protocol 112) from peers: nft insert")
        ruleset = lab.run("lb1", ["nft", "list", "table", "inet", table]).stdout
        assert f"ip saddr {lb2} ip protocol vrrp accept" in ruleset, ruleset
        assert p.returncode == 0, p.stdout
    finally:
        lab.run("lb1", ["nft", "delete", "table", "inet", table])
