"""Read one LB host's running state (effects): the gather script of `halb.facts.lbstate`
in one round trip through the host's transport and service manager, and the journal of a
unit that is not well in a second one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from halb import vrrp_filter
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


def learn_macs(
    transports: Mapping[str, Transport], ifaces: tuple[str, ...]
) -> tuple[dict[str, dict[str, str]], list[str], dict[str, list[str]], set[str]]:
    """Every LB host's MAC on each VIP interface, read on every host at once; the hosts
    without nft (they run without the filter; their peers' filters list them); each
    host's VIP interfaces that have no MAC there (the interface is missing); and the hosts
    where halb's VRRP filter is loaded now."""

    def one(t: Transport) -> str:
        return t.run(vrrp_filter.macs_argv(ifaces), timeout=30, check=True).out

    with ThreadPoolExecutor(max_workers=max(1, len(transports))) as pool:
        outs = dict(zip(transports, pool.map(one, transports.values()), strict=True))
    got = {h: vrrp_filter.parse_macs(out) for h, out in outs.items()}
    no_nft = [h for h, out in outs.items() if "@nft yes" not in out]
    missing = {h: [i for i in ifaces if i not in m] for h, m in got.items()}
    loaded = {h for h, out in outs.items() if "@loaded yes" in out}
    return got, no_nft, {h: x for h, x in missing.items() if x}, loaded
