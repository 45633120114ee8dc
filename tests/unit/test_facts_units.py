"""`systemctl show` parsed from captured output (systemd 252, Debian 12)."""

from __future__ import annotations

from halb.facts.units import parse_show, show_argv

UNITS = ("haproxy", "keepalived")
# before `halb deploy`: neither package installed
FRESH = """MainPID=0
Id=haproxy.service
ActiveState=inactive

MainPID=0
Id=keepalived.service
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


def test_show_asks_for_the_three_properties_of_each_unit() -> None:
    assert show_argv(UNITS) == [
        "systemctl", "show", "--property=Id", "--property=ActiveState",
        "--property=MainPID", "--", "haproxy", "keepalived",
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
