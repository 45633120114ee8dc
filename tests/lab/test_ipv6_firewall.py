"""Preflight's firewall check for VRRPv3 over IPv6 on a dual-stack lab: an ip6tables rule
on lb1 that drops protocol 112 from its IPv6 peer fails the preflight naming lb1, IPv6
and the peer (the IPv4 check stays green), `--open-firewall` adds an ip6tables accept
for that peer only, and the next preflight passes. The peer is lb2's IPv6 address (VRRP
unicast), or without unicast the link-local range the adverts come from, to ff02::12."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(lab_factory: Any) -> Lab:
    return lab_factory(lbs=2, masters=1, nodes=1, ip_family="dual")


def preflight(lab: Lab, spec: Path, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    argv = ["halb", "preflight", "--json", *extra, "-c", str(spec)]
    p = lab.run("taskbox", argv, timeout=180)
    assert p.stdout.strip().startswith("{"), p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout)["checks"], p.stderr


@pytest.mark.parametrize("unicast", [True, False], ids=["unicast", "multicast"])
def test_an_ip6tables_drop_of_vrrp_fails_and_open_firewall_opens_it(
    lab: Lab, unicast: bool
) -> None:
    spec = lab.spec
    if unicast:
        peer = source = lab.plan.host("lb2").address6 or ""
        saved_as, to = f"{peer}/128", []
    else:
        spec = lab.dir / "halb-multicast.yaml"
        spec.write_text(
            lab.spec.read_text().replace("vrrp: {profile: default}", "vrrp: {unicast: false}")
        )
        peer, saved_as, to = "fe80::/10", "fe80::/10", ["-d", "ff02::12"]
        source = f"the peers' link-local addresses ({peer}, multicast to ff02::12)"
    drop = ["-s", peer, "-p", "112", "-j", "DROP"]
    accept = ["-p", "112", "-s", peer, *to, "-j", "ACCEPT"]  # what --open-firewall adds
    lab.run("lb1", ["ip6tables", "-A", "INPUT", *drop], check=True)
    try:
        rc, checks, err = preflight(lab, spec)
        fails = [c for c in checks if c["level"] == "fail"]
        assert rc == 1 and len(fails) == 1, (checks, err)
        (f,) = fails
        assert (f["check"], f["host"]) == ("firewall", "lb1"), f
        assert f["message"].startswith(
            f"VRRP over IPv6 from {source} is dropped by ip6tables INPUT: -A INPUT -s "
            f"{saved_as} -p vrrp -j DROP on lb1"
        ), f
        assert f"error: lb1: VRRP over IPv6 from {source}" in " ".join(err.split()), err
        want = f"lb1: ip6tables -I INPUT 1 {' '.join(accept)} (unless present)"
        assert "--open-firewall would run:" in err and want in err, err
        # IPv4 VRRP and lb2's own firewall stay open, and nothing was added
        oks = [(c["host"], c["message"]) for c in checks if c["check"] == "firewall"]
        lb1_6 = lab.plan.host("lb1").address6 if unicast else source
        for host, start in (
            ("lb1", "VRRP (protocol 112) from peers allowed"),
            ("lb2", "VRRP (protocol 112) from peers allowed"),
            ("lb2", f"VRRP over IPv6 from {lb1_6} allowed"),
        ):
            assert any(h == host and m.startswith(start) for h, m in oks), (host, start, oks)
        saved = lab.run("lb1", ["ip6tables-save"]).stdout
        assert "-j ACCEPT" not in saved, saved

        rc, checks, err = preflight(lab, spec, "--open-firewall")
        assert "opening VRRP:" in err and want in err, err
        lb1 = [c for c in checks if c["check"] == "firewall" and c["host"] == "lb1"]
        assert [c["level"] for c in lb1] == ["ok"], lb1
        assert lb1[0]["message"].startswith("opened VRRP (protocol 112) from peers: ip6tables")
        assert rc == 0, (checks, err)
        saved = lab.run("lb1", ["ip6tables-save"]).stdout
        dest = " -d ff02::12/128" if to else ""
        assert f"-A INPUT -s {saved_as}{dest} -p vrrp -j ACCEPT" in saved, saved
        assert "--open-firewall would run:" not in err

        rc, checks, err = preflight(lab, spec)
        assert rc == 0, (checks, err)
        fw = {(c["host"], c["level"]) for c in checks if c["check"] == "firewall"}
        assert fw == {("lb1", "ok"), ("lb2", "ok")}, checks
        assert f"VRRP over IPv6 from {source} allowed (ip6tables INPUT: " in str(checks)
        assert "--open-firewall would run:" not in err, err
    finally:
        for rule in (drop, accept):
            lab.run("lb1", ["ip6tables", "-D", "INPUT", *rule])
        if spec != lab.spec:
            spec.unlink()
    assert "vrrp" not in lab.run("lb1", ["ip6tables-save"]).stdout
