"""The deploy's VIP check limits and the VRRP timing they come from (pure)."""

from __future__ import annotations

import pytest

from halb.deploy.settle import first_look, settle_time, top_holders, vip_wait_for
from halb.facts.ipaddr import IfAddr
from halb.spec.profiles import PROFILES, master_down, vip_wait

VIP = IfAddr("eth0", "inet", "10.0.0.100", 32, "eth0")
HOST = IfAddr("eth0", "inet", "10.0.0.11", 24, "eth0")


@pytest.mark.parametrize(
    ("advert", "down", "wait"), [(1.0, 4.0, 10.0), (0.03, 0.12, 10.0), (3.0, 12.0, 17.0)]
)
def test_master_down_and_the_vip_wait_follow_the_advert(
    advert: float, down: float, wait: float
) -> None:
    assert master_down(advert) == pytest.approx(down)
    assert vip_wait(advert) == pytest.approx(wait)


def test_master_down_covers_three_adverts_and_the_largest_skew_of_every_profile() -> None:
    for p in PROFILES.values():
        lowest = 50  # default priorities stop here
        skew = (256 - lowest) / 256 * p.advert_int
        assert 3 * p.advert_int + skew <= master_down(p.advert_int)


def test_settle_time_only_when_keepalived_was_touched() -> None:
    assert settle_time(1.0, 0.0, keepalived_touched=True) == 3.0
    assert settle_time(0.03, 3.0, keepalived_touched=True) == pytest.approx(4.06)
    assert settle_time(1.0, 5.0, keepalived_touched=False) == 0.0


def test_the_final_holder_is_the_highest_priority_unless_nopreempt() -> None:
    prios = {"internal": {"lb1": 230, "lb2": 250}, "external": {}}
    assert top_holders(prios, nopreempt=False) == {"internal": "lb2"}
    assert top_holders(prios, nopreempt=True) == {}


def test_vip_wait_adds_the_settle_time_to_the_wait() -> None:
    w = vip_wait_for(
        1.0, [0.0, 2.0], {"internal": {"lb1": 250, "lb2": 230}},
        nopreempt=False, keepalived_touched=True,
    )  # fmt: skip
    assert (w.timeout, w.settle, dict(w.final)) == (15.0, 5.0, {"internal": "lb1"})
    given = vip_wait_for(1.0, [], {}, nopreempt=False, keepalived_touched=False, timeout=2.5)
    assert (given.timeout, given.settle) == (2.5, 0.0)


def test_first_look_needs_every_host() -> None:
    hosts = ["lb1", "lb2"]
    # lb1 changed: its addresses after the change count, not the ones in its facts
    got = first_look(hosts, {"lb1": (HOST, VIP)}, {"lb1": (HOST,), "lb2": (HOST,)})
    assert got == {"lb1": (HOST, VIP), "lb2": (HOST,)}
    # lb2 not a target (--limit): no facts of it, so no first look
    assert first_look(hosts, {}, {"lb1": (HOST,)}) is None
    # lb1's addresses could not be read after its change
    assert first_look(hosts, {"lb1": None}, {"lb1": (HOST,), "lb2": (HOST,)}) is None
