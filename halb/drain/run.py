"""Drain and undrain on the LB hosts: set or clear the flag, then watch until the VIPs
have moved. The only part of halb.drain that talks to hosts."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from halb.drain import judge
from halb.drain.flag import CLEAR_FLAG, DRAIN_FLAG, SET_FLAG
from halb.errors import CheckFailed
from halb.facts.lbstate import gather_host
from halb.services import manager
from halb.spec import Cluster
from halb.status import StatusReport, assess, refs
from halb.transport import Transport, TransportFactory, for_host, sh

POLL = 0.2  # seconds between looks at the hosts while waiting


@dataclass(frozen=True)
class DrainReport:
    action: judge.Action
    host: str
    changed: bool  # False: the flag was already as asked
    seconds: float
    holders: dict[str, list[str]]
    drained: list[str]  # every drained LB host at the end
    forced: bool = False

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

    def look(self) -> StatusReport:
        def one(i: int) -> Any:
            h = self.hosts[i]
            t = self.transports[h.name]
            return gather_host(t, manager(self.cluster.service_manager(h), t))

        facts = list(self.pool.map(one, range(len(self.hosts))))
        vips, fes = refs(self.cluster)
        return assess(facts, vips, fes)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for t in self.transports.values():
            t.close()


def default_timeout(cluster: Cluster) -> float:
    """Track script fall/rise (about 3 s), the preempt delay, the takeover, and slack for
    busy hosts and slow links (each look at the hosts is a round trip to every one)."""
    delay = max((v.preempt_delay for v in cluster.vips), default=0.0)
    return 30.0 + delay + 4 * cluster.advert_int


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
            script = SET_FLAG if action == "drain" else CLEAR_FLAG
            w.transports[host].run(sh(script, DRAIN_FLAG), timeout=30, check=True)
            progress(f"{host}: drain flag {'set' if action == 'drain' else 'cleared'}")
        else:
            progress(f"{host}: already {'drained' if action == 'drain' else 'not drained'}")

        def step(r: StatusReport) -> judge.Progress:
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
    finally:
        w.close()
    holders = {v.name: list(v.holders) for v in report.vips}
    progress("VIPs: " + ", ".join(f"{k}@{','.join(h) or '-'}" for k, h in holders.items()))
    return DrainReport(
        action=action,
        host=host,
        changed=changed,
        seconds=round(time.monotonic() - t0, 3),
        holders=holders,
        drained=[h.host for h in report.hosts if h.drained],
        forced=force and action == "drain",
    )
