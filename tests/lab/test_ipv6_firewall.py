"""Preflight's firewall check for VRRPv3 over IPv6 on a dual-stack lab: an ip6tables rule
on lb1 that drops protocol 112 from lb2's IPv6 address fails the preflight naming lb1
and IPv6 (the IPv4 check stays green), `--open-firewall` adds an ip6tables accept for
lb2 only, and the next preflight passes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(lab_factory: Any) -> Lab:
    return lab_factory(lbs=2, masters=1, nodes=1, ip_family="dual")


def preflight(lab: Lab, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    argv = ["halb", "preflight", "--json", *extra, "-c", str(lab.spec)]
    p = lab.run("taskbox", argv, timeout=180)
    assert p.stdout.strip().startswith("{"), p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout)["checks"], p.stderr


def test_an_ip6tables_drop_of_vrrp_fails_and_open_firewall_opens_it(lab: Lab) -> None:
    lb2 = lab.plan.host("lb2").address6
    assert lb2
    drop = ["-s", lb2, "-p", "112", "-j", "DROP"]
    accept = ["-p", "112", "-s", lb2, "-j", "ACCEPT"]  # what --open-firewall adds
    lab.run("lb1", ["ip6tables", "-A", "INPUT", *drop], check=True)
    try:
        rc, checks, err = preflight(lab)
        fails = [c for c in checks if c["level"] == "fail"]
        assert rc == 1, (checks, err)
        assert len(fails) == 1, fails
        (f,) = fails
        assert (f["check"], f["host"]) == ("firewall", "lb1"), f
        assert f["message"].startswith(
            f"VRRP over IPv6 from {lb2} is dropped by ip6tables INPUT: -A INPUT -s {lb2}/128 "
            "-p vrrp -j DROP on lb1"
        ), f
        assert f"error: lb1: VRRP over IPv6 from {lb2}" in " ".join(err.split()), err
        want = f"lb1: ip6tables -I INPUT 1 -p 112 -s {lb2} -j ACCEPT (unless present)"
        assert "--open-firewall would run:" in err and want in err, err
        # IPv4 VRRP from lb2 and lb2's own firewall stay open, and nothing was added
        oks = [(c["host"], c["message"]) for c in checks if c["check"] == "firewall"]
        lb1_6 = lab.plan.host("lb1").address6
        for host, start in (
            ("lb1", "VRRP (protocol 112) from peers allowed"),
            ("lb2", "VRRP (protocol 112) from peers allowed"),
            ("lb2", f"VRRP over IPv6 from {lb1_6} allowed"),
        ):
            assert any(h == host and m.startswith(start) for h, m in oks), (host, start, oks)
        saved = lab.run("lb1", ["ip6tables-save"]).stdout
        assert "-j ACCEPT" not in saved, saved

        rc, checks, err = preflight(lab, "--open-firewall")
        assert "opening VRRP:" in err and want in err, err
        lb1 = [c for c in checks if c["check"] == "firewall" and c["host"] == "lb1"]
        assert [c["level"] for c in lb1] == ["ok"], lb1
        assert lb1[0]["message"].startswith("opened VRRP (protocol 112) from peers: ip6tables")
        assert rc == 0, (checks, err)
        saved = lab.run("lb1", ["ip6tables-save"]).stdout
        assert f"-A INPUT -s {lb2}/128 -p vrrp -j ACCEPT" in saved, saved
        assert "--open-firewall would run:" not in err

        rc, checks, err = preflight(lab)
        assert rc == 0, (checks, err)
        fw = {(c["host"], c["level"]) for c in checks if c["check"] == "firewall"}
        assert fw == {("lb1", "ok"), ("lb2", "ok")}, checks
        assert f"VRRP over IPv6 from {lb2} allowed (ip6tables INPUT: " in str(checks)
        assert "--open-firewall would run:" not in err, err
    finally:
        for rule in (drop, accept):
            lab.run("lb1", ["ip6tables", "-D", "INPUT", *rule])
    assert "vrrp" not in lab.run("lb1", ["ip6tables-save"]).stdout
