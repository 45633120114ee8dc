"""How long the deploy's VIP check waits, and for what (pure): the numbers come from the
VRRP timers (halb.spec.profiles), the plan says whether keepalived was touched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from halb.facts.ipaddr import IfAddr
from halb.spec.profiles import vip_wait


@dataclass(frozen=True)
class VipWait:
    """The VIP check's limits: give up after `timeout`; see the same holders for `settle`
    seconds unless each VIP is on its `final` host already."""

    timeout: float
    settle: float
    final: Mapping[str, str]


def settle_time(advert: float, preempt_delay: float, keepalived_touched: bool) -> float:
    """How long the holders must stay put after a deploy. A peer whose keepalived just
    started or reloaded may still take a VIP over: two adverts to hear the others, a
    second of slack, and the preempt delay before the one with the highest priority does.
    Nothing to wait for when keepalived was not touched anywhere."""
    return 2 * advert + 1 + preempt_delay if keepalived_touched else 0.0


def top_holders(priorities: Mapping[str, Mapping[str, int]], nopreempt: bool) -> dict[str, str]:
    """VIP name -> the host with the highest priority, where it ends up (with preemption:
    nobody takes it from there). Without preemption any holder may keep it."""
    if nopreempt:
        return {}
    return {v: max(p, key=lambda h: p[h]) for v, p in priorities.items() if p}


def vip_wait_for(
    advert: float,
    preempt_delays: Sequence[float],
    priorities: Mapping[str, Mapping[str, int]],
    *,
    nopreempt: bool,
    keepalived_touched: bool,
    timeout: float | None = None,
) -> VipWait:
    """The VIP check's limits after a deploy (`timeout`: the caller's own, if given)."""
    settle = settle_time(advert, max(preempt_delays, default=0.0), keepalived_touched)
    wait = timeout if timeout is not None else vip_wait(advert)
    return VipWait(wait + settle, settle, top_holders(priorities, nopreempt))


def first_look(
    hosts: Sequence[str],
    changed: Mapping[str, tuple[IfAddr, ...] | None],
    facts: Mapping[str, tuple[IfAddr, ...] | None],
) -> dict[str, tuple[IfAddr, ...]] | None:
    """Every host's addresses as the deploy last read them under its lock: after its
    changes for a changed host (`changed`), with its facts for the others. None unless
    every host has them: then the VIP check starts with a round trip of its own."""
    seen = {h: changed[h] if h in changed else facts.get(h) for h in hosts}
    have = {h: a for h, a in seen.items() if a is not None}
    return have if len(have) == len(seen) else None
