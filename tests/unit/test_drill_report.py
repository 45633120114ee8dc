"""The drill's pure parts: figures from timestamps, the table, the gate, the JSON."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from halb.drill import report as rp
from halb.drill.model import Packet, Probe, RoundRecord, record_from_dict

DATA = Path(__file__).parent.parent / "fixtures" / "drill"
OLD_MAC, NEW_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
VIP = "10.9.0.253"


def probes(
    fe: str, t0: float, t1: float, step: float, bad: tuple[float, float] = (0, 0)
) -> list[Probe]:
    out = []
    n = round((t1 - t0) / step)
    for i in range(n):
        s = t0 + i * step
        ok = not bad[0] <= s < bad[1]
        out.append(Probe(fe, s, s + 0.002, ok, "" if ok else "timeout"))
    return out


def adverts(src: str, mac: str, t0: float, t1: float, prio: int) -> list[Packet]:
    out, t = [], t0
    while t < t1:
        out.append(Packet(t, "lb2", "advert", src, mac, vrid=50, prio=prio))
        t += 1.0
    return out


def a_round(**kw: object) -> RoundRecord:
    """Fault at 10.0 on lb1; lb2 GARPs at 10.61; clients fail 10.0-10.6; restore at 13;
    the old holder preempts at 16.9 with a 50 ms second gap."""
    r = RoundRecord(
        fault="graceful",
        index=1,
        target="lb1",
        vips={"internal": VIP},
        frontends={"apiserver": "internal"},
        lb_addresses={"lb1": "10.9.0.11", "lb2": "10.9.0.12"},
        macs={"lb1": OLD_MAC, "lb2": NEW_MAC},
        rate=100,
        t_start=9.0,
        t_fault=10.0,
        t_restore=13.0,
        t_end=20.0,
        holders_before={"internal": ["lb1"]},
        holders_end={"internal": ["lb1"]},
        polls=[(10.5, {"internal": ["lb1"]}), (11.0, {"internal": ["lb2"]})],
    )
    r.probes = [
        *probes("apiserver", 9.0, 16.9, 0.01, bad=(10.0, 10.6)),
        *probes("apiserver", 16.95, 20.0, 0.01),
    ]
    r.packets = [
        *adverts("10.9.0.11", OLD_MAC, 7.9, 10.0, 150),
        Packet(10.0, "lb2", "advert", "10.9.0.11", OLD_MAC, vrid=50, prio=0),
        Packet(10.61, "client", "garp", "10.9.0.12", NEW_MAC, addr=VIP),
        Packet(10.62, "client", "synack", VIP, OLD_MAC, addr=VIP),
        Packet(10.63, "client", "synack", VIP, NEW_MAC, addr=VIP),
        Packet(16.9, "client", "garp", "10.9.0.11", OLD_MAC, addr=VIP),
    ]
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_longest_gap_edges() -> None:
    assert rp.longest_gap([1.0, 2.0, 2.5, 5.0], 2.1, 3.0) == pytest.approx(2.5)
    # the interval that opens the window comes from the last time before it
    assert rp.longest_gap([1.0, 4.0], 2.0, 3.0) == pytest.approx(3.0)
    # nothing after the window start: the gap runs to the window end
    assert rp.longest_gap([1.0], 2.0, 3.0) == pytest.approx(2.0)
    assert rp.longest_gap([], 2.0, 3.0) == pytest.approx(1.0)
    # intervals entirely after the window do not count
    assert rp.longest_gap([1.0, 1.1, 1.2, 9.0], 1.0, 1.15) == pytest.approx(0.1)


def test_figures_of_a_graceful_round() -> None:
    f = rp.figures(a_round())
    assert f.new_holder == "lb2"
    assert f.takeover_s == pytest.approx(0.61)
    assert f.old_last_advert_s == pytest.approx(-0.1, abs=1e-6)  # the advert at 9.9
    assert f.outage_s["apiserver"] == pytest.approx(0.61, abs=0.011)  # 9.99 -> 10.602
    assert f.second_outage_s["apiserver"] == pytest.approx(0.05, abs=0.011)
    assert f.baseline_gap_s["apiserver"] == pytest.approx(0.01, abs=0.001)
    assert f.failed["apiserver"] == 60 and f.errors["apiserver"] == {"timeout": 60}
    assert f.old_holder_answers == 1  # the SYN-ACK from the old MAC after the GARP
    assert f.max_holders == {"internal": 1}
    assert f.vip_moved and f.garps_after_restore == 1


def test_a_frontend_that_never_answers_again_is_a_long_second_outage_and_a_problem() -> None:
    # the partition heal of the fast profile, before the drill healed the old holder
    # first: the clients' ARP entry stayed on the host that had given the VIP up
    r = a_round(fault="partition")
    r.probes = [
        *probes("apiserver", 9.0, 13.2, 0.01),
        *probes("apiserver", 13.2, 20.0, 0.01, bad=(13.2, 20.0)),
    ]
    f = rp.figures(r)
    assert f.second_outage_s["apiserver"] == pytest.approx(6.8, abs=0.02)  # 13.19 -> 20.0
    assert f.silent_at_end_s["apiserver"] == pytest.approx(6.8, abs=0.02)
    (problem,) = rp.violations([f], None)
    assert "apiserver has not answered for the last 6.8 s" in problem
    assert rp.violations([rp.figures(a_round())], None) == []


def test_no_synack_capture_means_unknown_old_answers() -> None:
    r = a_round()
    r.packets = [p for p in r.packets if p.kind != "synack"]
    f = rp.figures(r)
    assert f.old_holder_answers is None
    assert any("SYN-ACK" in n for n in f.notes)


def test_no_garp_means_no_takeover() -> None:
    r = a_round(polls=[(10.5, {"internal": ["lb1"]})])
    r.packets = [p for p in r.packets if p.kind != "garp"]
    f = rp.figures(r)
    assert f.takeover_s is None and f.new_holder is None and not f.vip_moved


def test_gate_budget_split_brain_and_apiserver_exemption() -> None:
    ok = rp.figures(a_round())
    assert rp.violations([ok], None) == []
    assert rp.violations([ok], 1.0) == []
    over = rp.violations([ok], 0.001)
    assert any("apiserver outage 0.6" in v for v in over)
    assert any("second outage" in v for v in over)
    split = rp.figures(a_round(holders_end={"internal": ["lb1", "lb2"]}))
    (v,) = rp.violations([split], None)
    assert "split brain left after healing" in v and "lb1, lb2" in v
    none = rp.figures(a_round(holders_end={"internal": []}))
    assert "held by no LB host" in rp.violations([none], None)[0]
    api = rp.figures(a_round(fault="apiserver"))
    # the apiserver frontend failing is the fault itself; the VIP moving is not
    assert rp.violations([api], 0.001) == [
        "apiserver round 1: the VIP moved although only the apiservers failed"
    ]


def test_table_percentiles() -> None:
    figs = []
    for i, gap in enumerate((0.2, 0.4, 0.1, 0.3), 1):
        r = a_round(index=i)
        r.probes = probes("apiserver", 9.0, 20.0, 0.01, bad=(10.0, 10.0 + gap))
        figs.append(rp.figures(r))
    (row,) = rp.table(figs)
    assert row.rounds == 4 and row.fault == "graceful" and row.frontend == "apiserver"
    p50, p95, mx = row.outage
    assert p50 == pytest.approx(0.21, abs=0.011)
    assert p95 == pytest.approx(0.41, abs=0.011) and mx == p95
    assert rp.percentile([3, 1, 2], 50) == 2 and rp.percentile([5], 95) == 5
    cells = rp.table_lines([row])[0]
    assert len(cells) == len(rp.TABLE_HEADER)


def test_document_has_every_field_and_round_trips() -> None:
    r = a_round()
    f = rp.figures(r)
    doc = json.loads(json.dumps(rp.document([r], [f], {"rate": 100}, [])))
    assert doc["schema"] == rp.SCHEMA and doc["ok"] is True
    (rd,) = doc["rounds"]
    for key in ("t_start", "t_fault", "t_restore", "t_end", "polls", "probes", "packets"):
        assert key in rd
    assert rd["probe_fields"] == ["frontend", "start", "end", "ok", "error"]
    assert set(rd["figures"]) >= {
        "takeover_s",
        "outage_s",
        "second_outage_s",
        "failed",
        "old_holder_answers",
        "holders_end",
        "max_holders",
    }
    again = record_from_dict(rd)
    assert rp.figures(again) == f


def test_recorded_lab_rounds() -> None:
    """Rounds recorded in the lab (default profile), figures recomputed from the JSON."""
    doc = json.loads(gzip.decompress((DATA / "lab-rounds.json.gz").read_bytes()))
    by_fault = {}
    for rd in doc["rounds"]:
        f = rp.figures(record_from_dict(rd))
        # recorded before the second outage ran from the restore itself and before the
        # silence at the end was a figure: those two are checked apart
        was = dict(rd["figures"], silent_at_end_s=f.silent_at_end_s)
        was["second_outage_s"] = f.second_outage_s
        assert f == rp.RoundFigures(**was)
        for fe, second in f.second_outage_s.items():
            assert second >= rd["figures"]["second_outage_s"][fe]
            assert f.silent_at_end_s[fe] < rp.SILENT_AT_END  # every round recovered
        by_fault[f.fault] = f
    g = by_fault["graceful"]
    # graceful stop: the backup waits only its skew time, (256 - 100) / 256 s
    assert g.takeover_s == pytest.approx(0.61, abs=0.05) and g.new_holder == "lb2"
    k = by_fault["kill"]
    # SIGKILL: the dead holder keeps the VIP configured next to the new holder
    assert k.max_holders["internal"] == 2
    assert k.takeover_s is not None and k.takeover_s > 2.5
    p = by_fault["partition"]
    assert p.max_holders["internal"] == 2 and p.garps_after_restore > 0
    assert all(len(h) == 1 for h in p.holders_end.values())
