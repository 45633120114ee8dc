"""The drill's fault records (pure): what each one says the drill does."""

from __future__ import annotations

import pytest

from halb.drill.fault_kinds import ALL_FAULTS, FAULTS, KINDS, Effect, Fault, Hits
from halb.drill.model import FAULTS as MODEL_FAULTS


def test_every_fault_has_one_record_and_either_a_service_or_a_script() -> None:
    assert set(KINDS) == set(Fault)
    assert FAULTS == MODEL_FAULTS
    assert ALL_FAULTS == ("graceful", "kill", "haproxy", "link", "apiserver", "partition")
    # the hostile host's faults are named, never part of `all`
    assert set(FAULTS) - set(ALL_FAULTS) == {f for f in FAULTS if KINDS[Fault(f)].rogue}
    for k in KINDS.values():
        assert (k.service is None) != (k.script == ""), k.fault
        # a service fault acts on the holder's own daemon
        assert k.service is None or k.hits is Hits.HOLDER


@pytest.mark.parametrize(
    ("fault", "hold"),
    [
        ("graceful", 6.0),
        ("kill", 6.0),
        ("haproxy", 9.0),
        ("link", 5.0),
        ("partition", 7.0),
        ("apiserver", 2.0),
        ("rogue-vrrp-forged", 10.0),
        ("arp-spoof", 10.0),
    ],
)
def test_hold_is_the_master_down_time_and_a_margin_unless_the_vip_stays(
    fault: str, hold: float
) -> None:
    assert KINDS[Fault(fault)].hold(4.0) == hold


def test_link_restores_itself_so_its_backstop_is_the_hold_and_its_watch_runs_to_the_end() -> None:
    link, kill = KINDS[Fault.LINK], KINDS[Fault.KILL]
    assert link.backstop(5.0) == 5.0 and kill.backstop(6.0) == 36.0
    assert not link.stops_early and kill.stops_early
    assert not KINDS[Fault.APISERVER].stops_early  # nothing to see: the VIP stays


def test_the_effect_each_fault_waits_for() -> None:
    moved = {"internal": ["lb2"], "external": ["lb2"]}
    split = {"internal": ["lb1", "lb2"], "external": ["lb1", "lb2"]}
    stayed = {"internal": ["lb1"], "external": ["lb1"]}
    kill, partition = KINDS[Fault.KILL], KINDS[Fault.PARTITION]
    assert kill.effect_seen("lb1", moved, "internal")
    assert not kill.effect_seen("lb1", stayed, "internal")
    assert partition.effect is Effect.SPLIT
    assert partition.effect_seen("lb1", split, "internal")
    assert not partition.effect_seen("lb1", moved, "internal")
    assert partition.heal_holder_first and not kill.heal_holder_first
