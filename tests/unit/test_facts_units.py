"""`systemctl show` parsed from captured output (systemd 252, Debian 12)."""

from __future__ import annotations

from pathlib import Path

from halb.facts.units import parse_show, parse_states, show_argv

UNITS = ("haproxy", "keepalived")
# before `halb deploy`: neither package installed
FRESH = """MainPID=0
Id=haproxy.service
LoadState=not-found
ActiveState=inactive

MainPID=0
Id=keepalived.service
LoadState=not-found
ActiveState=inactive
"""
# after it
RUNNING = """MainPID=468
Id=haproxy.service
ActiveState=active

MainPID=512
Id=keepalived.service
ActiveState=reloading
"""


def test_show_asks_for_state_pid_and_restarts_of_each_unit() -> None:
    assert show_argv(UNITS) == [
        "systemctl", "show", "--property=Id", "--property=LoadState", "--property=ActiveState",
        "--property=SubState", "--property=MainPID", "--property=NRestarts",
        "--property=ActiveEnterTimestampMonotonic", "--", "haproxy", "keepalived",
    ]  # fmt: skip


def test_active_units_give_their_main_pid_and_inactive_ones_none() -> None:
    assert parse_show(FRESH, UNITS) == {"haproxy": None, "keepalived": None}
    assert parse_show(RUNNING, UNITS) == {"haproxy": 468, "keepalived": 512}
    failed = RUNNING.replace("ActiveState=active", "ActiveState=failed")
    assert parse_show(failed, UNITS) == {"haproxy": None, "keepalived": 512}


def test_an_answer_that_does_not_fit_is_none() -> None:
    assert parse_show("", UNITS) is None
    assert parse_show(RUNNING.split("\n\n")[0], UNITS) is None  # one block for two units
    swapped = "\n\n".join(reversed(RUNNING.strip().split("\n\n")))
    assert parse_show(swapped, UNITS) is None  # blocks in another order


def test_states_of_a_unit_systemd_keeps_restarting() -> None:
    """Captured on a lab host whose haproxy.cfg was broken by hand (Restart=always)."""
    text = Path(__file__).parent.parent / "fixtures" / "status" / "show-units-failing.txt"
    states = parse_states(text.read_text(), UNITS)
    assert states is not None
    ha, ka = states["haproxy"], states["keepalived"]
    assert (ha.active, ha.sub, ha.main_pid, ha.restarts) == ("activating", "auto-restart", None, 71)
    assert ha.label == "activating (auto-restart)" and not ha.running
    assert (ka.active, ka.main_pid, ka.restarts, ka.running) == ("active", 747, 0, True)
    assert ka.since_us == 29723292607 and ka.label == "active (running)"


def test_an_older_systemd_without_restart_count_reads_as_never_restarted() -> None:
    states = parse_states(RUNNING, UNITS)
    assert states is not None
    assert states["haproxy"].restarts == 0 and states["haproxy"].since_us is None
