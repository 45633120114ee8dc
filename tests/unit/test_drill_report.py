"""The drill's pure parts: figures from timestamps, the table, the gate, the JSON."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

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


def failed_before(rd: dict[str, Any], fe: str) -> int:
    """Failed probes of a recorded round that ended before its fault (the baseline)."""
    return sum(1 for p in rd["probes"] if p[0] == fe and not p[3] and p[2] < rd["t_fault"])


def failback_round() -> RoundRecord:
    """a_round with a failure before the fault, a probe sent at the restore and reset, and
    three resets when the old holder's GARP at 16.9 takes the VIP back."""
    r = a_round()
    r.probes += [
        Probe("apiserver", 9.5, 9.505, False, "timeout"),  # the baseline (ends before 10.0)
        Probe("apiserver", 13.0, 13.03, False, "reset"),  # sent at the restore
        *(Probe("apiserver", 16.8 + i / 100, 16.905 + i / 100, False, "reset") for i in range(3)),
    ]
    return r


def test_failed_requests_split_into_the_outage_and_the_failback() -> None:
    f = rp.figures(failback_round())
    assert f.failed["apiserver"] == 1 + 60 + 1 + 3
    assert f.outage_failed["apiserver"] == 60  # failed from t_fault, sent before t_restore
    assert f.failback_failed["apiserver"] == 1 + 3  # sent at or after t_restore
    assert f.failback_s == pytest.approx(3.9)  # restore 13.0 -> the old MAC's GARP at 16.9
    # a request sent before the restore that fails after it (a timeout: it met the fault)
    # is the first outage's; one sent at the restore is the failback's
    late = [Probe("apiserver", 12.9, 13.4, False, "timeout")]
    assert rp.outage_failures(late, "apiserver", 10.0, 13.0) == 1
    assert rp.failed_in(late, "apiserver", 13.0, 20.0) == 0
    assert (
        rp.failed_in([Probe("apiserver", 13.0, 13.1, False, "reset")], "apiserver", 13.0, 20.0) == 1
    )
    # a restore in the middle of the outage splits its failures where they were sent
    r = a_round(t_restore=10.3)
    r.probes = probes("apiserver", 9.0, 20.0, 0.01, bad=(10.0, 10.6))
    g = rp.figures(r)
    assert g.outage_failed["apiserver"] + g.failback_failed["apiserver"] == 60
    assert g.failback_failed["apiserver"] == 30  # the probes sent at 10.30 .. 10.59
    # the windows follow the timestamps alone: the same round, the split moved with them
    assert rp.failed_in(r.probes, "apiserver", 10.0, 10.3) == 30
    assert rp.outage_failures(r.probes, "apiserver", 10.0, 10.002) == 1  # sent at 10.0
    assert rp.failed_in(r.probes, "console", 0.0, 99.0) == 0


def test_no_garp_from_the_old_holder_after_the_restore_means_no_failback_time() -> None:
    r = a_round()
    r.packets = [p for p in r.packets if not (p.kind == "garp" and p.mac == OLD_MAC)]
    f = rp.figures(r)
    assert f.failback_s is None
    # a GARP of the old holder before the restore is not the failback
    r.packets.append(Packet(12.0, "client", "garp", "10.9.0.11", OLD_MAC, addr=VIP))
    assert rp.figures(r).failback_s is None


def test_failback_gate_names_the_round_over_the_budget() -> None:
    figs = [rp.figures(a_round()), rp.figures(failback_round())]
    figs[1] = replace(figs[1], index=2)
    assert rp.failback_over(figs[0], 0) is None  # lost nothing
    assert rp.failback_over(figs[1], 4) is None  # lost exactly 4: not more than N
    over = rp.failback_over(figs[1], 3)
    assert over == (
        "graceful round 2: the failback lost 4 requests (apiserver 4) > --max-failback-failed 3"
    )
    assert rp.violations(figs, None, 3) == [over]
    assert rp.violations(figs, None, 4) == []
    assert rp.violations(figs, None) == []  # no budget, no judgement
    # the apiserver frontend fails by design under the apiserver fault: not judged there
    api = replace(figs[1], fault="apiserver", vip_moved=False)
    assert rp.failback_over(api, 0) is None


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
    assert row.failed == 20 + 40 + 10 + 30  # every failure was in the first outage
    assert (row.outage_failed, row.failback_failed) == (100, 0)
    assert cells[-3:] == ["100", "100", "0"] and rp.TABLE_HEADER[-2:] == ["in 1st", "in 2nd"]
    (split,) = rp.table([rp.figures(failback_round())])
    assert (split.failed, split.outage_failed, split.failback_failed) == (65, 60, 4)


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
        "outage_failed",
        "failback_failed",
        "failback_s",
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
        # and before the failed requests were split and the failback timed
        for key in ("outage_failed", "failback_failed", "failback_s"):
            was[key] = getattr(f, key)
        assert {fe: f.outage_failed[fe] + f.failback_failed[fe] for fe in f.failed} == {
            fe: n - failed_before(rd, fe) for fe, n in f.failed.items()
        }
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
