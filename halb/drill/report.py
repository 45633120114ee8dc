"""Figures from a round's timestamps, the p50/p95/max table, the gate, the JSON (pure)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from halb.drill.fault_kinds import KINDS, Effect, Fault
from halb.drill.model import ANNOUNCEMENTS, Packet, Probe, RoundRecord, family

SCHEMA = "halb.drill/1"


@dataclass(frozen=True)
class VipTimes:
    """An IPv6 VIP's takeover and failback, by the unsolicited neighbour advertisements."""

    address: str
    takeover_s: float | None  # fault -> the first unsolicited NA from another host
    new_holder: str | None  # that host
    failback_s: float | None  # restore -> the old holder's first unsolicited NA


@dataclass(frozen=True)
class RoundFigures:
    fault: str
    index: int
    target: str
    new_holder: str | None  # the host whose gratuitous ARP took the first VIP over
    takeover_s: float | None  # fault -> first gratuitous ARP from another host
    old_last_advert_s: float | None  # fault -> the old holder's last advert (priority > 0)
    outage_s: dict[str, float]  # frontend -> longest gap between successes, fault..restore
    second_outage_s: dict[str, float]  # frontend -> the same after the restore
    silent_at_end_s: dict[str, float]  # frontend -> end of the round - its last success
    baseline_gap_s: dict[str, float]  # frontend -> longest gap before the fault (the floor)
    failed: dict[str, int]  # frontend -> failed probes in the round
    outage_failed: dict[
        str, int
    ]  # frontend -> of those, failed from the fault, sent before the restore
    failback_failed: dict[str, int]  # frontend -> of those, sent at restore..end (failback)
    failback_s: float | None  # restore -> the old holder's first GARP for the first VIP
    errors: dict[str, dict[str, int]]  # frontend -> error kind -> count
    probes: dict[str, int]  # frontend -> probes in the round
    old_holder_answers: int | None  # SYN-ACKs from the old holder's MAC after takeover
    max_holders: dict[str, int]  # VIP -> most holders seen at once during the fault
    holders_end: dict[str, list[str]]
    vip_moved: bool
    garps_after_restore: int  # gratuitous ARPs and unsolicited NAs for a VIP
    notes: list[str] = field(default_factory=list)
    # the lanes probed over IPv6 -> their frontend (none in an IPv4-only round)
    ipv6_lanes: dict[str, str] = field(default_factory=dict)
    # every IPv6 VIP (label -> its times by NDP); none in an IPv4-only round
    ipv6_vips: dict[str, VipTimes] = field(default_factory=dict)


def longest_gap(times: Sequence[float], lo: float, hi: float) -> float:
    """Longest interval between consecutive times that overlaps [lo, hi].

    The last time at or before lo opens the first interval (lo itself when there is
    none); a path that has not come back by hi shows the interval up to hi.
    """
    pts = sorted(times)
    before = [t for t in pts if t <= lo]
    seq = [before[-1] if before else lo, *(t for t in pts if t > lo)]
    best = 0.0
    for a, b in itertools.pairwise(seq):
        if a >= hi:
            break
        best = max(best, b - a)
    if seq[-1] < hi:
        best = max(best, hi - seq[-1])
    return best


def _first_success_times(probes: Iterable[Probe], frontend: str) -> list[float]:
    return sorted(p.end for p in probes if p.frontend == frontend and p.ok)


def failed_in(probes: Iterable[Probe], frontend: str, lo: float, hi: float) -> int:
    """Failed probes of a frontend sent (their start) in [lo, hi)."""
    return sum(1 for p in probes if p.frontend == frontend and not p.ok and lo <= p.start < hi)


def outage_failures(probes: Iterable[Probe], frontend: str, fault: float, restore: float) -> int:
    """Failed probes of a frontend sent before the restore whose failure came at or after
    the fault: the first outage's, also when they time out after the restore."""
    return sum(
        1
        for p in probes
        if p.frontend == frontend and not p.ok and p.end >= fault and p.start < restore
    )


def _takeover(announced: Sequence[Packet], address: str, old_mac: str, end: float) -> Packet | None:
    """The first announcement of `address` (GARP, NA) from a MAC other than the old holder's."""
    return next(
        (p for p in announced if p.addr == address and p.mac.lower() != old_mac and p.ts < end),
        None,
    )


def _failback(
    announced: Sequence[Packet], address: str, old_mac: str, restore: float
) -> Packet | None:
    """The old holder announcing `address` again after the restore (it took the VIP back)."""
    return next(
        (
            p
            for p in announced
            if p.addr == address and p.mac.lower() == old_mac and p.ts >= restore
        ),
        None,
    )


def figures(r: RoundRecord) -> RoundFigures:
    notes: list[str] = []
    first_vip = next(iter(r.vips.values()), "")
    old_mac = r.macs.get(r.target, "").lower()
    old_ip = r.lb_addresses.get(r.target, "")
    by_mac = {m.lower(): h for h, m in r.macs.items()}

    # gratuitous ARPs (IPv4) and unsolicited neighbour advertisements (IPv6)
    garps = sorted(
        (p for p in r.packets if p.kind in ANNOUNCEMENTS and p.ts >= r.t_fault),
        key=lambda p: p.ts,
    )
    takeover = _takeover(garps, first_vip, old_mac, r.t_end)
    takeover_s = takeover.ts - r.t_fault if takeover else None
    new_holder = by_mac.get(takeover.mac.lower()) if takeover else None
    # the failback: the old holder announces the first VIP again after the restore
    back = _failback(garps, first_vip, old_mac, r.t_restore)
    ipv6_vips: dict[str, VipTimes] = {}
    for label, address in r.vips.items():
        if family(address) != 6:
            continue
        take6 = _takeover(garps, address, old_mac, r.t_end)
        back6 = _failback(garps, address, old_mac, r.t_restore)
        ipv6_vips[label] = VipTimes(
            address,
            round(take6.ts - r.t_fault, 4) if take6 else None,
            by_mac.get(take6.mac.lower()) if take6 else None,
            round(back6.ts - r.t_restore, 4) if back6 else None,
        )

    horizon = takeover.ts if takeover else r.t_restore
    # IPv6 adverts come from the old holder's IPv6 or link-local address: by its MAC
    old_adverts = [
        p.ts
        for p in r.packets
        if p.kind == "advert"
        and (p.src == old_ip or (family(p.src) == 6 and p.mac.lower() == old_mac))
        and (p.prio or 0) > 0
        and p.ts <= horizon
    ]
    old_last = max(old_adverts) - r.t_fault if old_adverts else None

    outage: dict[str, float] = {}
    second: dict[str, float] = {}
    silent: dict[str, float] = {}
    base: dict[str, float] = {}
    failed: dict[str, int] = {}
    outage_failed: dict[str, int] = {}
    failback_failed: dict[str, int] = {}
    errors: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    for fe in r.frontends:
        ok_times = _first_success_times(r.probes, fe)
        outage[fe] = round(longest_gap(ok_times, r.t_fault, r.t_restore), 4)
        pre = [t for t in ok_times if t < r.t_fault]
        base[fe] = round(longest_gap(pre, pre[0], r.t_fault), 4) if pre else 0.0
        after = [t for t in ok_times if t >= r.t_restore]
        # the second outage: from the restore on (the old holder returning); a frontend
        # that never answers again shows the whole rest of the round
        second[fe] = round(longest_gap(after, r.t_restore, r.t_end), 4)
        silent[fe] = round(r.t_end - max(ok_times, default=r.t_start), 4)
        mine = [p for p in r.probes if p.frontend == fe]
        counts[fe] = len(mine)
        bad = [p for p in mine if not p.ok]
        failed[fe] = len(bad)
        # a failure belongs to the window its request was sent in: one sent before the
        # restore that times out after it met the fault (a backend not yet marked down);
        # the failback moves the VIP seconds after the restore (failback_hold), so what
        # it resets was sent after the restore. What failed before the fault is the baseline.
        outage_failed[fe] = outage_failures(bad, fe, r.t_fault, r.t_restore)
        failback_failed[fe] = failed_in(bad, fe, r.t_restore, math.inf)
        errors[fe] = dict(Counter(p.error for p in bad))

    synacks = [p for p in r.packets if p.kind == "synack"]
    old_answers: int | None = None
    if synacks and takeover is not None:
        # after the takeover of the first VIP of the answer's family
        taken: dict[int, float] = {}
        for address in r.vips.values():
            fam = family(address)
            if fam not in taken:
                t = _takeover(garps, address, old_mac, r.t_end)
                taken[fam] = t.ts if t else math.inf
        old_answers = sum(
            1
            for p in synacks
            if p.mac.lower() == old_mac
            and taken.get(family(p.addr), math.inf) < p.ts < r.t_restore
            and p.addr in r.vips.values()
        )
    elif not synacks:
        notes.append("no SYN-ACK capture on the client's host: answers by the old holder unknown")

    max_holders = {
        v: max([len(h.get(v, [])) for _, h in r.polls] or [len(r.holders_before.get(v, []))])
        for v in r.vips
    }
    moved = takeover is not None or any(
        any(x != r.target for x in h.get(v, [])) for _, h in r.polls for v in r.vips
    )
    garps_after = sum(1 for p in garps if p.ts >= r.t_restore and p.addr in r.vips.values())
    return RoundFigures(
        fault=r.fault,
        index=r.index,
        target=r.target,
        new_holder=new_holder,
        takeover_s=round(takeover_s, 4) if takeover_s is not None else None,
        old_last_advert_s=round(old_last, 4) if old_last is not None else None,
        outage_s=outage,
        second_outage_s=second,
        silent_at_end_s=silent,
        baseline_gap_s=base,
        failed=failed,
        outage_failed=outage_failed,
        failback_failed=failback_failed,
        failback_s=round(back.ts - r.t_restore, 4) if back else None,
        errors=errors,
        probes=counts,
        old_holder_answers=old_answers,
        max_holders=max_holders,
        holders_end={k: list(v) for k, v in r.holders_end.items()},
        vip_moved=moved,
        garps_after_restore=garps_after,
        notes=notes + list(r.notes),
        # an IPv6 lane is its frontend's name and a 6 (model.lane)
        ipv6_lanes={
            ln: ln[:-1] for ln, vip in r.frontends.items() if family(r.vips.get(vip, "")) == 6
        },
        ipv6_vips=ipv6_vips,
    )


# -------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    s = sorted(values)
    k = max(1, math.ceil(q / 100 * len(s)))
    return s[k - 1]


@dataclass(frozen=True)
class Row:
    fault: str
    frontend: str
    rounds: int
    outage: tuple[float, float, float]  # p50, p95, max
    second: tuple[float, float, float]
    takeover: tuple[float, float, float] | None
    failed: int
    outage_failed: int  # of `failed`, in the first outage (fault..restore)
    failback_failed: int  # of `failed`, in the failback (restore..end)
    family: int = 4  # the frontend's VIP probed over IPv4 or IPv6


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    return (percentile(values, 50), percentile(values, 95), max(values))


def _takeover_of(f: RoundFigures, fam: int) -> float | None:
    """The takeover of the round's first VIP of a family: by GARP for IPv4; for IPv6 by
    the first IPv6 VIP's unsolicited NA (the first VIP itself when every VIP is IPv6)."""
    if fam == 4 or not f.ipv6_vips:
        return f.takeover_s
    return next(iter(f.ipv6_vips.values())).takeover_s


def table(figs: Sequence[RoundFigures]) -> list[Row]:
    """A row per fault and lane: a dual-stack frontend has one per family."""
    rows: list[Row] = []
    faults = list(dict.fromkeys(f.fault for f in figs))
    for fault in faults:
        mine = [f for f in figs if f.fault == fault]
        fes = list(dict.fromkeys(fe for f in mine for fe in f.outage_s))
        for fe in fes:
            six = fe in mine[0].ipv6_lanes
            fam = 6 if six else 4
            takes = [t for f in mine if (t := _takeover_of(f, fam)) is not None]
            rows.append(
                Row(
                    fault,
                    mine[0].ipv6_lanes[fe] if six else fe,
                    len(mine),
                    _stats([f.outage_s[fe] for f in mine]),
                    _stats([f.second_outage_s[fe] for f in mine]),
                    _stats(takes) if takes else None,
                    sum(f.failed[fe] for f in mine),
                    sum(f.outage_failed[fe] for f in mine),
                    sum(f.failback_failed[fe] for f in mine),
                    fam,
                )
            )
    return rows


# -------------------------------------------------------------------------------- gate


SILENT_AT_END = 1.0  # seconds without an answer when the round ends: not recovered


def judged(f: RoundFigures) -> list[str]:
    """The frontends a budget applies to: under the apiserver fault the apiserver frontend
    fails by design (every backend is failing), so only the others."""
    return [fe for fe in f.outage_s if not (f.fault == "apiserver" and fe == "apiserver")]


def failback_over(f: RoundFigures, max_failed: int) -> str | None:
    """The problem when the round's failback lost more than `max_failed` requests."""
    lost = {fe: f.failback_failed[fe] for fe in judged(f)}
    total = sum(lost.values())
    if total <= max_failed:
        return None
    each = ", ".join(f"{fe} {n}" for fe, n in lost.items() if n)
    return (
        f"{f.fault} round {f.index}: the failback lost {total} requests ({each}) "
        f"> --max-failback-failed {max_failed}"
    )


def violations(
    figs: Sequence[RoundFigures], max_outage: float | None, max_failback_failed: int | None = None
) -> list[str]:
    """What makes the drill exit 1: an outage over budget, a failback that lost more
    requests than allowed, not one holder at the end, or a frontend that does not answer
    again by the end of the round.

    Under the apiserver fault the apiserver frontend fails by design (every backend is
    failing); there the budgets apply to the other frontends, and the VIP must not move.
    """
    out: list[str] = []
    for f in figs:
        tag = f"{f.fault} round {f.index}"
        for vip, hs in f.holders_end.items():
            if len(hs) > 1:
                out.append(f"{tag}: split brain left after healing: {vip} held by {', '.join(hs)}")
            elif not hs:
                out.append(f"{tag}: VIP {vip} held by no LB host after the round")
        if KINDS[Fault(f.fault)].effect is Effect.VIP_STAYS and f.vip_moved:
            why = "only the apiservers failed" if f.fault == Fault.APISERVER else "it must stay"
            out.append(f"{tag}: the VIP moved although {why}")
        for fe, quiet in f.silent_at_end_s.items():
            if quiet > SILENT_AT_END:
                out.append(
                    f"{tag}: {fe} has not answered for the last {quiet:.1f} s of the round "
                    "(the clients' ARP entry may still name a host without the VIP)"
                )
        over = None if max_failback_failed is None else failback_over(f, max_failback_failed)
        if over:
            out.append(over)
        if max_outage is None:
            continue
        for fe in judged(f):
            for what, val in (("outage", f.outage_s[fe]), ("second outage", f.second_outage_s[fe])):
                if val > max_outage:
                    out.append(f"{tag}: {fe} {what} {val:.3f} s > --max-outage {max_outage:g} s")
    return out


# ---------------------------------------------------------------------------- document


def _probe(p: Probe) -> list[Any]:
    return [p.frontend, round(p.start, 6), round(p.end, 6), p.ok, p.error]


def _packet(p: Packet) -> dict[str, Any]:
    return {k: v for k, v in asdict(p).items() if v not in (None, "")}


def document(
    records: Sequence[RoundRecord],
    figs: Sequence[RoundFigures],
    settings: dict[str, Any],
    problems: Sequence[str],
) -> dict[str, Any]:
    """The --json document: settings, every round with every timestamp, the table."""
    rounds = []
    for r, f in zip(records, figs, strict=True):
        d = r.as_dict()
        d["probes"] = [_probe(p) for p in r.probes]
        d["probe_fields"] = ["frontend", "start", "end", "ok", "error"]
        d["packets"] = [_packet(p) for p in r.packets]
        d["figures"] = asdict(f)
        rounds.append(d)
    return {
        "schema": SCHEMA,
        "settings": settings,
        "rounds": rounds,
        "table": [asdict(row) for row in table(figs)],
        "problems": list(problems),
        "ok": not problems,
    }


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _with_family(rows: Sequence[Row]) -> bool:
    """The printed table has a family column when a frontend was probed over IPv6."""
    return any(r.family != 4 for r in rows)


def table_header(rows: Sequence[Row]) -> list[str]:
    if not _with_family(rows):
        return list(TABLE_HEADER)
    return [*TABLE_HEADER[:2], "family", *TABLE_HEADER[2:]]


def table_lines(rows: Sequence[Row]) -> list[list[str]]:
    """Rows of text cells for the printed table (seconds); the columns of `table_header`."""
    out = []
    fam = _with_family(rows)
    for r in rows:
        tk = r.takeover or (None, None, None)
        out.append(
            [
                r.fault,
                r.frontend,
                *([f"IPv{r.family}"] if fam else []),
                str(r.rounds),
                *(_fmt(x) for x in r.outage),
                *(_fmt(x) for x in r.second),
                *(_fmt(x) for x in tk),
                str(r.failed),
                str(r.outage_failed),
                str(r.failback_failed),
            ]
        )
    return out


TABLE_HEADER = [
    "fault",
    "frontend",
    "rounds",
    "outage p50",
    "p95",
    "max",
    "2nd outage p50",
    "p95",
    "max",
    "takeover p50",
    "p95",
    "max",
    "failed",
    "in 1st",
    "in 2nd",
]
