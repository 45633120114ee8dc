"""The journal lines `halb status` shows for a unit that is not well: when, how many, how
long, and never a secret. On output captured from a lab host whose haproxy.cfg was broken
by hand (two lines with secrets added to it: one HAProxy would print for a bad value,
one a keepalived message quoting `auth_pass`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from halb.facts.journal import LINES, UnitJournal, clean, journal_argv, parse_journal, wanted
from halb.facts.lbstate import LbFacts, facts_from_output, gather_script, parse_uptime
from halb.facts.units import UnitState, parse_states, show_argv
from halb.status import FrontendRef, VipRef, assess, render_text
from halb.transport.base import MASK

FIX = Path(__file__).parent.parent / "fixtures" / "status"
UNITS = ("haproxy", "keepalived")
KNOWN = "Lab-Pa55word_x"  # the lab host's SSH password in the captured line
UPTIME = 29878.65  # /proc/uptime when it was captured


def states() -> dict[str, UnitState]:
    found = parse_states((FIX / "show-units-failing.txt").read_text(), UNITS)
    assert found is not None
    return found


def journal_text() -> str:
    return (FIX / "journal-failing.txt").read_text()


def healthy(restarts: int = 0, ago: float = 3600.0) -> UnitState:
    return UnitState("haproxy", "active", "running", 10, restarts, int((UPTIME - ago) * 1e6))


def test_only_a_unit_that_is_not_well_has_its_journal_read() -> None:
    assert wanted(states(), UPTIME) == {"haproxy": "activating (auto-restart)"}
    for bad in ("failed", "inactive", "activating", "deactivating"):
        unit = UnitState("keepalived", bad, "dead", None)
        assert wanted({"keepalived": unit}, UPTIME) == {"keepalived": f"{bad} (dead)"}
    missing = UnitState("haproxy", "inactive", "dead", None, load="not-found")
    assert wanted({"haproxy": missing}, UPTIME) == {}  # not installed yet: nothing to read
    assert wanted({"haproxy": healthy()}, UPTIME) == {}
    assert wanted({"haproxy": healthy(restarts=3)}, UPTIME) == {}  # restarted, but long ago
    assert wanted({"haproxy": healthy(restarts=2, ago=30)}, UPTIME) == {
        "haproxy": "up for 30 s after 2 automatic restarts"
    }
    assert wanted({"haproxy": healthy(restarts=1, ago=30)}, None) == {}  # no clock, no guess


def test_the_journal_command_is_bounded_and_takes_units_as_arguments() -> None:
    argv = journal_argv({"haproxy": False, "keepalived": True})
    assert argv[:2] == ["sh", "-c"]
    assert argv[3:] == ["sh", str(LINES), "300", "haproxy", "all", "keepalived", "manager"]
    script = argv[2]
    assert 'journalctl -q -u "$1" $m -n "$n" --no-pager -o short-iso' in script
    assert 'cut -c "1-$w"' in script


def test_the_journal_script_asks_journalctl_per_unit(tmp_path: Path) -> None:
    """Run for real with a `journalctl` that prints its arguments."""
    fake = tmp_path / "journalctl"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    argv = journal_argv({"haproxy": False, "keepalived": True}, lines=3, width=44)
    out = subprocess.run(
        argv, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, capture_output=True, text=True
    ).stdout
    assert out.splitlines() == [
        "@@journal haproxy",
        "-q -u haproxy -n 3 --no-pager -o short-iso",
        "@@journal keepalived",
        "-q -u keepalived _PID=1 -n 3 --no-pager -o s",  # cut at 44 characters
    ]


def test_journal_lines_per_unit_the_last_few_with_secrets_masked() -> None:
    found = parse_journal(journal_text(), UNITS, [KNOWN])
    ha, ka = found["haproxy"], found["keepalived"]
    assert len(ha) == LINES  # nine captured, the last eight kept
    assert "unknown keyword 'bogus-keyword'" in ha[0]
    assert ha[-1].endswith("passed a missing or unparsable integer value in '********'")
    assert ka[-1].endswith(f"auth_pass {MASK} ignored")  # not known, masked by its keyword
    text = json.dumps(found)
    assert KNOWN not in text and "hunter22" not in text
    # without knowing it, the password HAProxy quoted would show: the list matters
    assert any(KNOWN in ln for ln in parse_journal(journal_text(), UNITS)["haproxy"])


def test_a_unit_missing_from_the_answer_gets_no_lines_and_notes_are_dropped() -> None:
    text = "@@journal haproxy\n-- No entries --\n\n@@journal other\nx\n"
    assert parse_journal(text, UNITS) == {"haproxy": (), "keepalived": ()}


def test_a_line_is_cut_cleaned_and_never_ends_in_part_of_a_secret() -> None:
    assert clean("a\x1b[31mred\x07 b") == "a?[31mred? b"
    long = "x" * 400
    assert clean(long) == "x" * 299 + "…"
    # cut on the host (300 bytes) right inside the secret
    cut = ("y" * 290 + KNOWN)[:300]
    assert cut.endswith(KNOWN[:10])
    assert clean(cut, [KNOWN]) == "y" * 290 + MASK
    assert clean("stats auth admin:s3cret here") == f"stats auth {MASK} here"
    assert clean("password='abc' and secret=xyz") == f"password='{MASK}' and secret={MASK}"
    assert clean("received a 0 auth, expecting 1!") == "received a 0 auth, expecting 1!"


def test_the_unit_state_rides_with_the_status_round_trip() -> None:
    script = gather_script(show_argv(UNITS))
    assert script.index("@@units") < script.index("@@uptime") < script.index("echo @@end")
    assert "systemctl show --property=Id" in script
    assert gather_script(["true"]).count("@@units") == 1
    assert parse_uptime("29878.65 36734.42\n") == UPTIME
    assert parse_uptime("") is None


VIPS = [VipRef("internal", "10.250.45.253", "halb_internal")]
FRONTENDS = [FrontendRef("apiserver", "internal", ("master1",))]


def test_status_shows_the_lines_in_text_and_json_and_nothing_for_healthy_units() -> None:
    gathered = (FIX / "gather-lb2.txt").read_text()
    base = facts_from_output("lb2", gathered)
    lines = parse_journal(journal_text(), UNITS, [KNOWN])
    sick = LbFacts(
        "lb2", None, base.addrs, base.vrrp, None, 747, base.stats,
        journal=(UnitJournal("haproxy", "activating (auto-restart)", lines["haproxy"]),),
    )  # fmt: skip
    well = LbFacts("lb1", None, base.addrs, base.vrrp, 10, 11, base.stats)
    report = assess([well, sick], VIPS, FRONTENDS)
    text = render_text(report)
    at = text.index("  haproxy activating (auto-restart); last journal lines:")
    assert text[at - 1].startswith("lb2:")
    assert text[at + 1 : at + 1 + LINES] == [f"    {ln}" for ln in lines["haproxy"]]
    assert sum("journal" in ln for ln in text) == 1  # lb1 is healthy: nothing
    doc = json.loads(json.dumps(report.as_dict()))
    by_host = {h["host"]: h for h in doc["hosts"]}
    assert by_host["lb1"]["journal"] == []
    assert by_host["lb2"]["journal"] == [
        {
            "unit": "haproxy",
            "reason": "activating (auto-restart)",
            "lines": list(lines["haproxy"]),
            "running": False,
        }
    ]
    assert "lb2: HAProxy is not running" in report.problems
    assert KNOWN not in json.dumps(doc) and KNOWN not in "\n".join(text)


def test_a_recent_restart_by_systemd_is_a_note() -> None:
    base = facts_from_output("lb1", (FIX / "gather-lb1.txt").read_text())
    j = UnitJournal("keepalived", "up for 12 s after 1 automatic restart", ("line",), True)
    f = LbFacts("lb1", None, base.addrs, base.vrrp, 10, 11, base.stats, journal=(j,))
    report = assess([f], VIPS, FRONTENDS)
    assert "lb1: keepalived up for 12 s after 1 automatic restart" in report.notes
    text = render_text(report)
    at = text.index(
        "  keepalived up for 12 s after 1 automatic restart; systemd's last lines on it:"
    )
    assert text[at + 1] == "    line"
    assert not any("keepalived" in p for p in report.problems)  # a note only
