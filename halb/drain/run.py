"""Drain and undrain on the LB hosts: set or clear the flag, then watch until the VIPs
have moved. The only part of halb.drain that talks to hosts."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from halb.drain import handover, judge
from halb.drain.flag import CLEAR_FLAG, DRAIN_FLAG, SET_FLAG
from halb.errors import CheckFailed, HalbError
from halb.facts.lbstate import LbFacts
from halb.gather import gather_host
from halb.services import manager
from halb.spec import Cluster
from halb.spec.profiles import master_down
from halb.status import StatusReport, assess, refs
from halb.transport import Transport, TransportFactory, for_host, sh

POLL = 0.2  # seconds between looks at the hosts while waiting
GRACE = 10.0  # at most this long after the move for the old holder's connections to end


@dataclass(frozen=True)
class DrainReport:
    action: judge.Action
    host: str
    changed: bool  # False: the flag was already as asked
    seconds: float
    holders: dict[str, list[str]]
    drained: list[str]  # every drained LB host at the end
    forced: bool = False
    bridge: dict[str, Any] | None = None  # the handover of live connections (None: no move)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flag": DRAIN_FLAG, "ok": True}


class Watcher:
    """Status of every LB host over transports kept open between looks."""

    def __init__(self, cluster: Cluster, transport_for: TransportFactory) -> None:
        self.cluster = cluster
        self.hosts = list(cluster.lb_hosts)
        self.transports: dict[str, Transport] = {}
        for h in self.hosts:
            self.transports[h.name] = transport_for(h)
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(self.hosts)))

    def facts(self) -> list[LbFacts]:
        def one(i: int) -> LbFacts:
            h = self.hosts[i]
            t = self.transports[h.name]
            return gather_host(t, manager(self.cluster.service_manager(h), t))

        return list(self.pool.map(one, range(len(self.hosts))))

    def look(self) -> StatusReport:
        vips, fes = refs(self.cluster)
        return assess(self.facts(), vips, fes)

    def on_all(self, argvs: dict[str, list[str]]) -> dict[str, str | Exception]:
        """Run one argv per host, all at once; each host's output or its error."""

        def one(name: str) -> str | Exception:
            try:
                return self.transports[name].run(argvs[name], timeout=30, check=True).out
            except HalbError as e:
                return e

        names = list(argvs)
        return dict(zip(names, self.pool.map(one, names), strict=True))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for t in self.transports.values():
            t.close()


class Bridge:
    """The handover of live connections for one drain or undrain (see `handover`): halb
    puts up the takers' side; the old holder's is in place while it is MASTER."""

    def __init__(self, w: Watcher, moves: list[handover.Move], limit: float) -> None:
        self.w, self.moves, self.limit = w, moves, limit
        self.hosts: list[str] = []  # where something was set up (and must be undone)
        self.skipped: list[str] = []
        self.forwarded = 0
        self.open_at_end = 0

    def open(self, progress: Callable[[str], None]) -> None:
        old = {m.old: handover.hold_argv() for m in self.moves}
        for name, res in self.w.on_all(old).items():
            if isinstance(res, Exception):
                self.skipped.append(f"{name}: {res}")
        argvs: dict[str, list[str]] = {}
        # IPv6 VIPs: halb keeps them local on the old holder (failback.sh does IPv4)
        six = {h: handover.accept6_argv(self.moves, h, self.limit) for h in old}
        for name, res in self.w.on_all({h: a for h, a in six.items() if a}).items():
            self.hosts.append(name)
            if isinstance(res, Exception):
                self.skipped.append(f"{name}: {res}")
        for m in self.moves:
            for t in m.takers:
                argvs.setdefault(t, handover.forward_argv(self.moves, t, self.limit))
        self.hosts = [*self.hosts, *(h for h in argvs if h not in self.hosts)]
        for name, res in self.w.on_all(argvs).items():
            if isinstance(res, Exception):
                self.skipped.append(f"{name}: {res}")
        if self.skipped:
            progress(
                "handover bridge off (connections in flight may be reset): "
                + "; ".join(self.skipped)
            )
            self.close()
        else:
            progress(f"handover bridge up on {', '.join(sorted(self.hosts))}")

    def settle(self, frontends: set[str], deadline: float) -> None:
        """Wait until the old holders' VIP frontends have no session (or the deadline)."""
        old = {m.old for m in self.moves}
        while True:
            facts = [f for f in self.w.facts() if f.host in old]
            self.open_at_end = sum(
                r.scur
                for f in facts
                for r in f.stats or ()
                if r.type == 0 and r.pxname in frontends
            )
            if self.open_at_end == 0 or time.monotonic() > deadline:
                return
            time.sleep(POLL)

    def close(self) -> None:
        if not self.hosts:
            return
        undo = handover.undo_argv()
        for res in self.w.on_all({h: undo for h in self.hosts}).values():
            if isinstance(res, str):
                self.forwarded += handover.forwarded(res)
        self.hosts = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "moves": [asdict(m) for m in self.moves],
            "up": not self.skipped,
            "skipped": self.skipped,
            "forwarded_packets": self.forwarded,
            "sessions_left": self.open_at_end,
        }


def moves_for(
    cluster: Cluster, report: StatusReport, host: str, action: judge.Action, preempt: bool
) -> list[handover.Move]:
    """Which VIPs will change hands, from whom, and who may take them. An IPv6 VIP is
    handed to its old holder's IPv6 address: a VIP whose old holder has none moves
    without the bridge."""
    others = [h.host for h in report.hosts if h.host != host and judge.healthy(h)]
    prios = {v.address: dict(v.priorities) for v in cluster.vips}
    moves: list[handover.Move] = []
    for family in (4, 6):
        holders = {v.address: list(v.holders) for v in report.vips if v.family == family}
        ips = {h.name: ip for h in cluster.lb_hosts if (ip := cluster.host_address(h, family))}
        will = handover.will_hold(action, host, holders, prios, others, preempt=preempt)
        # a holder without an address of the family cannot be handed packets
        known = {a: now for a, now in holders.items() if all(n in ips for n in now)}
        interfaces = {v.address: v.interface for v in cluster.vips}
        moves += handover.plan(known, will, interfaces, ips)
    return moves


def raise_takers(
    w: Watcher,
    cluster: Cluster,
    report: StatusReport,
    host: str,
    action: judge.Action,
    progress: Callable[[str], None],
) -> None:
    """Clear the returning flag of the one host that takes each moving VIP: every backup
    keeps it set (failback.sh), so no other peer preempts."""
    healthy = [h.host for h in report.hosts if h.host != host and judge.healthy(h)]
    holders = {v.address: list(v.holders) for v in report.vips}
    prios = {v.address: dict(v.priorities) for v in cluster.vips}
    instances = {v.address: v.instance for v in cluster.vips}
    takers: dict[str, list[str]] = {}
    for address, taker in handover.raised(action, host, holders, prios, healthy).items():
        takers.setdefault(taker, []).append(instances[address])
    for name, res in w.on_all({t: handover.raise_argv(i) for t, i in takers.items()}).items():
        if isinstance(res, Exception):
            raise CheckFailed(f"{name}: cannot clear its returning flag: {res}")
        progress(f"{name}: returning flag cleared for {', '.join(takers[name])}")


def default_timeout(cluster: Cluster) -> float:
    """Track script fall/rise (about 3 s), the preempt delay, the takeover, and slack for
    busy hosts and slow links (each look at the hosts is a round trip to every one)."""
    delay = max((v.preempt_delay for v in cluster.vips), default=0.0)
    return 30.0 + delay + master_down(cluster.advert_int)


def run(
    cluster: Cluster,
    host: str,
    action: judge.Action,
    *,
    force: bool = False,
    timeout: float | None = None,
    transport_for: TransportFactory = for_host,
    progress: Callable[[str], None] = lambda _: None,
) -> DrainReport:
    judge.check_target(host, cluster.lb_host_names, list(cluster.inventory.hosts))
    judge.check_preempt(action, cluster.spec.vrrp.nopreempt)
    t0 = time.monotonic()
    limit = timeout if timeout is not None else default_timeout(cluster)
    priorities = {v.name: dict(v.priorities) for v in cluster.vips}
    preempt = not cluster.spec.vrrp.nopreempt
    w = Watcher(cluster, transport_for)
    bridge: Bridge | None = None
    try:
        report = w.look()
        me = next(h for h in report.hosts if h.host == host)
        if not me.reachable:
            raise CheckFailed(f"{host}: unreachable: {me.error}")
        changed = me.drained != (action == "drain")
        if action == "drain" and changed:
            why = judge.refusal(report, host)
            if why and not force:
                raise CheckFailed(f"refusing to drain {host}: {why} (--force drains anyway)")
            if why:
                progress(f"{host}: draining anyway (--force): {why}")
        if changed:
            moves = moves_for(cluster, report, host, action, preempt)
            bridged = {m.address for m in moves}
            alone = [
                v.address
                for v in report.vips
                if v.family == 6 and host in v.holders and v.address not in bridged
            ]
            if alone and action == "drain":
                progress(
                    f"IPv6 VIP(s) {', '.join(alone)} move without the handover bridge (their "
                    "holder has no IPv6 address in the inventory: set ip6=)"
                )
            if moves:
                bridge = Bridge(w, moves, limit + GRACE + 30)
                bridge.open(progress)
            if preempt:
                raise_takers(w, cluster, report, host, action, progress)
            script = SET_FLAG if action == "drain" else CLEAR_FLAG
            w.transports[host].run(sh(script, DRAIN_FLAG), timeout=30, check=True)
            progress(f"{host}: drain flag {'set' if action == 'drain' else 'cleared'}")
        else:
            progress(f"{host}: already {'drained' if action == 'drain' else 'not drained'}")

        def step(r: StatusReport) -> judge.Wait:
            if action == "drain":
                return judge.drain_progress(r, host)
            return judge.undrain_progress(r, host, priorities, preempt)

        state = step(report)
        while not state.done:
            if time.monotonic() - t0 > limit:
                raise CheckFailed(
                    f"{host}: {action} waited {limit:.0f} s for {state.waiting_for}; "
                    f"the drain flag is {'set' if action == 'drain' else 'cleared'} "
                    "(run `halb status` to see where things stand)"
                )
            time.sleep(POLL)
            report = w.look()
            state = step(report)
        if bridge is not None and bridge.hosts:
            moved = {m.address for m in bridge.moves}
            fes = {f.name for f in cluster.frontends if f.address in moved}
            bridge.settle(fes, time.monotonic() + GRACE)
            bridge.close()
            left = f", {bridge.open_at_end} long connections reset" if bridge.open_at_end else ""
            progress(f"handover bridge down: {bridge.forwarded} packets handed over{left}")
    finally:
        if bridge is not None:
            bridge.close()
        w.close()
    holders = {(v.name if v.family == 4 else f"{v.name}6"): list(v.holders) for v in report.vips}
    progress("VIPs: " + ", ".join(f"{k}@{','.join(h) or '-'}" for k, h in holders.items()))
    return DrainReport(
        action=action,
        host=host,
        changed=changed,
        seconds=round(time.monotonic() - t0, 3),
        holders=holders,
        drained=[h.host for h in report.hosts if h.drained],
        forced=force and action == "drain",
        bridge=bridge.as_dict() if bridge is not None else None,
    )
