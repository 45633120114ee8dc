"""The drill's failback figures and gate on a real lab (default profile, `link` fault).

When the link comes back, the old holder preempts at once and the connections in flight
through the new holder are reset: the drill must count those requests apart from the
first outage's, in every round of the JSON, and `--max-failback-failed` must exit 1
naming each round that lost more. How many a round loses is the lab's to say, so the
test checks the gate against the counts the same run measured, never a fixed number.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab

ROUNDS = 3


def recount(r: dict[str, Any], fe: str) -> tuple[int, int, int]:
    """A frontend's failed requests from the raw probes (docs/drill.md's windows): the
    baseline (failed before the fault), the first outage (failed from the fault on, sent
    before the restore) and the failback (sent from the restore on)."""
    i = {k: n for n, k in enumerate(r["probe_fields"])}
    bad = [
        (p[i["start"]], p[i["end"]])
        for p in r["probes"]
        if p[i["frontend"]] == fe and not p[i["ok"]]
    ]
    base = sum(1 for _, end in bad if end < r["t_fault"])
    first = sum(1 for s, end in bad if end >= r["t_fault"] and s < r["t_restore"])
    back = sum(1 for s, _ in bad if s >= r["t_restore"])
    return base, first, back


@pytest.fixture(scope="module")
def link_drill(lab: Lab) -> dict[str, Any]:
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=120)
    assert r.returncode == 0, r.stderr
    js = lab.dir / "failback.json"
    # a budget of 0: every round whose failback lost a request must be named
    argv = ["halb", "test-failover", "-c", str(lab.spec), "--fault", "link"]
    argv += ["--rounds", str(ROUNDS), "--rate", "50", "--json", str(js)]
    argv += ["--max-failback-failed", "0"]
    r = lab.run("taskbox", argv, timeout=ROUNDS * 120 + 60)
    assert "Traceback" not in r.stderr, r.stderr
    doc: dict[str, Any] = json.loads(js.read_text())
    doc["_rc"], doc["_out"], doc["_err"] = r.returncode, r.stdout, r.stderr
    print(r.stdout + r.stderr)  # the measured rounds, for `pytest -rP`
    return doc


def test_json_counts_the_outage_and_the_failback_apart(link_drill: dict[str, Any]) -> None:
    doc = link_drill
    assert doc["settings"]["max_failback_failed"] == 0
    assert len(doc["rounds"]) == ROUNDS
    for r in doc["rounds"]:
        f = r["figures"]
        for fe in r["frontends"]:
            # the split follows the round's own timestamps, and adds up with the baseline
            before, first, back = recount(r, fe)
            assert (f["outage_failed"][fe], f["failback_failed"][fe]) == (first, back)
            assert f["failed"][fe] == before + first + back
            # a link down for a master-down time loses requests in the first outage
            assert f["outage_failed"][fe] > 0, f
        # the old holder came back: its GARP after the restore, and it holds the VIPs
        assert f["failback_s"] is not None and 0 <= f["failback_s"] < 30, f
        assert all(h == [r["target"]] for h in f["holders_end"].values()), f["holders_end"]
    for row in doc["table"]:
        rs = doc["rounds"]
        fe = row["frontend"]
        assert row["outage_failed"] == sum(r["figures"]["outage_failed"][fe] for r in rs)
        assert row["failback_failed"] == sum(r["figures"]["failback_failed"][fe] for r in rs)
    assert "in 2nd" in doc["_out"] and "in the failback" in doc["_out"]


def test_gate_names_every_round_whose_failback_lost_requests(link_drill: dict[str, Any]) -> None:
    doc = link_drill
    lost = {
        r["index"]: sum(r["figures"]["failback_failed"].values())
        for r in doc["rounds"]
        if sum(r["figures"]["failback_failed"].values()) > 0
    }
    named = {
        int(m.group(1)): int(m.group(2))
        for m in re.finditer(
            r"FAILED: link round (\d+): the failback lost (\d+) requests", doc["_err"]
        )
    }
    assert named == lost, doc["_err"]
    others = [p for p in doc["problems"] if "--max-failback-failed" not in p]
    assert others == [], others
    assert doc["_rc"] == (1 if lost else 0), doc["_out"] + doc["_err"]
    assert doc["ok"] is not bool(lost)
