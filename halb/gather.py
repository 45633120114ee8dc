"""Read one LB host's running state (effects): the gather script of `halb.facts.lbstate`
in one round trip through the host's transport and service manager, and the journal of a
unit that is not well in a second one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from halb.daemons import SERVICES, ServiceName
from halb.errors import HalbError
from halb.facts.journal import UnitJournal, journal_argv, parse_journal, wanted
from halb.facts.lbstate import (
    LbFacts,
    facts_from_output,
    gather_script,
    parse_uptime,
    split_sections,
)
from halb.facts.units import UnitState
from halb.services import ServiceManager
from halb.shell import sh
from halb.transport import Transport


def gather_host(
    t: Transport, svc: ServiceManager, *, journal: bool = False, secrets: Sequence[str | None] = ()
) -> LbFacts:
    """One host's facts in one round trip; with `journal`, a second one only when a unit
    is not well (systemd hosts), for its last journal lines with `secrets` masked."""
    try:
        argv = svc.pids_argv(SERVICES)
        res = t.run(sh(gather_script(argv)), timeout=30)
        f = facts_from_output(t.name, res.out)
        sec = split_sections(res.out)
        answer = sec.get("units", "")
        pids = svc.parse_pids(answer, SERVICES)
        states = svc.unit_states(answer, SERVICES)
        lines: tuple[UnitJournal, ...] = ()
        if journal and states:
            lines = read_journal(t, states, parse_uptime(sec.get("uptime", "")), secrets)
        return LbFacts(
            host=f.host,
            addrs=f.addrs,
            vrrp=f.vrrp,
            stats=f.stats,
            haproxy_pid=pids["haproxy"],
            keepalived_pid=pids["keepalived"],
            drained=f.drained,
            redirect=f.redirect,
            journal=lines,
            vrrp_filter=f.vrrp_filter,
            macs=f.macs,
            neigh=f.neigh,
        )
    except HalbError as e:
        return LbFacts(t.name, error=str(e).removeprefix(f"{t.name}: "))


def read_journal(
    t: Transport,
    states: Mapping[ServiceName, UnitState],
    now: float | None,
    secrets: Sequence[str | None],
) -> tuple[UnitJournal, ...]:
    why = wanted(states, now)
    if not why:
        return ()
    units = list(why)
    res = t.run(journal_argv({u: states[u].running for u in units}), timeout=30)
    found = parse_journal(res.out, units, secrets)
    return tuple(UnitJournal(u, why[u], found[u], states[u].running) for u in units)
