"""`halb test-failover` over IPv6: one round of `link` and one of `graceful` on a
dual-stack lab and on an IPv6-only lab, run from the taskbox.

The takeover of every IPv6 VIP is seen on the wire by the new holder's unsolicited
neighbour advertisement, VRRPv3 adverts over IPv6 are captured, the clients probe every
VIP address of each frontend and the JSON carries the family of each. One lab at a time:
each is taken down when its tests are done (and by `lab_factory`, also on failure).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from halb import lab as labmod
from halb.lab import Lab

pytestmark = pytest.mark.lab

FAULTS = ("link", "graceful")


@pytest.fixture(scope="module", params=["dual", "6"], ids=["dual-stack", "ipv6-only"])
def drilled(request: pytest.FixtureRequest, lab_factory: Any) -> Iterator[dict[str, Any]]:
    """A deployed lab of one family, one round of each fault, the JSON and the output."""
    lab: Lab = lab_factory(lbs=2, masters=2, nodes=2, ip_family=request.param)
    try:
        r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        js = lab.dir / "drill.json"
        p = lab.run(
            "taskbox",
            ["halb", "test-failover", "-c", str(lab.spec), "--fault", ",".join(FAULTS),
             "--rate", "50", "--json", str(js)],
            timeout=420,
        )  # fmt: skip
        assert "Traceback" not in p.stderr, p.stderr
        doc = json.loads(js.read_text()) if js.exists() else {}
        yield {"lab": lab, "family": request.param, "rc": p.returncode,
               "out": p.stdout + p.stderr, "doc": doc}  # fmt: skip
    finally:
        labmod.down(lab.name, lab.dir)  # before the next family's lab comes up


def lanes(family: str) -> dict[str, int]:
    six = {"apiserver6": 6, "console6": 6}
    return six if family == "6" else {"apiserver": 4, "console": 4, **six}


def test_drill_exits_0_and_prints_the_family(drilled: dict[str, Any]) -> None:
    assert drilled["rc"] == 0, drilled["out"]
    assert "family" in drilled["out"] and "IPv6" in drilled["out"]
    doc = drilled["doc"]
    assert doc["ok"] is True and doc["problems"] == []
    assert [r["fault"] for r in doc["rounds"]] == list(FAULTS)


def test_every_ipv6_vip_is_taken_over_by_its_na(drilled: dict[str, Any]) -> None:
    lab: Lab = drilled["lab"]
    for r in drilled["doc"]["rounds"]:
        f = r["figures"]
        new = next(h for h in lab.lbs if h != r["target"])
        six = {label: a for label, a in r["vips"].items() if ":" in a}
        assert len(six) == 2, r["vips"]  # internal6 and external6
        assert set(f["ipv6_vips"]) == set(six)
        for label, address in six.items():
            v = f["ipv6_vips"][label]
            assert v["address"] == address and v["new_holder"] == new, (r["fault"], v)
            assert v["takeover_s"] is not None and 0 < v["takeover_s"] < 10, (r["fault"], v)
            # the figure is the new holder's first unsolicited NA for the VIP, on the wire
            nas = [
                p
                for p in r["packets"]
                if p["kind"] == "na" and p["addr"] == address and p["mac"] == r["macs"][new]
            ]
            assert nas, (r["fault"], label)
            first = min(p["ts"] for p in nas if p["ts"] >= r["t_fault"])
            assert first - r["t_fault"] == pytest.approx(v["takeover_s"], abs=1e-3)
        # VRRPv3 over IPv6 was captured, with its priority
        ipv6_adverts = [p for p in r["packets"] if p["kind"] == "advert" and ":" in p["src"]]
        assert ipv6_adverts and all("prio" in p for p in ipv6_adverts)
        assert all(len(h) == 1 for h in f["holders_end"].values()), f["holders_end"]
        if drilled["family"] == "6":
            # every VIP is IPv6: the round's own takeover is the first VIP's NA
            assert f["takeover_s"] == f["ipv6_vips"]["internal6"]["takeover_s"]


def test_clients_probe_every_address_and_the_json_has_the_family(
    drilled: dict[str, Any],
) -> None:
    want = lanes(drilled["family"])
    doc = drilled["doc"]
    for r in doc["rounds"]:
        f = r["figures"]
        assert set(f["outage_s"]) == set(want), f["outage_s"]
        assert f["ipv6_lanes"] == {ln: ln[:-1] for ln, fam in want.items() if fam == 6}
        for ln in want:
            assert f["probes"][ln] > 100, (r["fault"], ln, f["probes"])
            assert 0 < f["outage_s"][ln] < 10, (r["fault"], ln, f["outage_s"])
            assert f["silent_at_end_s"][ln] < 1.0, (r["fault"], ln)
        # the client's capture saw SYN-ACKs from the IPv6 VIPs
        assert any(p["kind"] == "synack" and ":" in p["addr"] for p in r["packets"])
        assert f["old_holder_answers"] is not None
    rows = {(t["fault"], t["frontend"], t["family"]) for t in doc["table"]}
    assert rows == {(fault, ln.rstrip("6"), fam) for fault in FAULTS for ln, fam in want.items()}
