"""`deploy()`: connect and lock, gather facts, plan, apply on every host in parallel,
check the VIPs, and roll every changed host back when any of that fails (peers must not
run different configs)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from halb.deploy.apply import HostDeployer, Progress
from halb.deploy.locks import LocalLock, RemoteLock, utc_now
from halb.deploy.plan import Action, ServiceAction, compute_plan, diff_lines, sysctl_keys
from halb.deploy.report import DeployReport, HostResult, HostState
from halb.deploy.vips import wait_for_vips
from halb.errors import DeployError, HalbError, InputError
from halb.facts.ipaddr import IP_ADDR, parse_ip_addr
from halb.facts.target import TargetFacts, facts_argv, parse_facts_output
from halb.inventory import Host
from halb.paths import SYSCTL_CONF
from halb.render import RenderedFile
from halb.services import SERVICES, ServiceManager, manager
from halb.spec import Cluster
from halb.transport import Transport, TransportFactory, batch, for_host, split_batch


def _quiet(host: str, message: str) -> None:
    pass


# ------------------------------------------------------------------------ remote facts


class FactsQuery:
    """Files, sysctl values, commands, OS, service pids and addresses: one command, which
    the deploy runs under its remote lock (no round trip of its own)."""

    def __init__(
        self, t: Transport, svc: ServiceManager, files: Mapping[str, RenderedFile]
    ) -> None:
        self.t, self.svc = t, svc
        self.paths = list(files)
        keys = list(sysctl_keys(files[SYSCTL_CONF].content)) if SYSCTL_CONF in files else []
        self.pids_cmd = svc.pids_argv(SERVICES)
        cmds = [facts_argv(self.paths, keys), IP_ADDR, *([self.pids_cmd] if self.pids_cmd else [])]
        self.argv, self.marker = batch(cmds)
        self.count = len(cmds)

    def complete(self, out: str) -> bool:
        return split_batch(out, self.marker, self.count) is not None

    def parse(self, out: str, err: str = "") -> TargetFacts:
        parts = split_batch(out, self.marker, self.count)
        if parts is None:
            raise self.t.error("the facts script's answer was cut short")
        (rc, facts_out), (ip_rc, ip_out) = parts[:2]
        if rc != 0:
            why = err.strip() or facts_out.strip() or "no output"
            raise self.t.error(f"the facts script exited {rc}: {why}")
        remote, missing, os_ids, live = parse_facts_output(self.paths, facts_out)
        if self.pids_cmd:
            pids_rc, pids_out = parts[2]
            pids = self.svc.parse_pids(pids_out if pids_rc == 0 else "", SERVICES)
        else:
            pids = self.svc.main_pids()
        running: dict[str, bool] = {n: n not in missing and pids[n] is not None for n in SERVICES}
        addrs = parse_ip_addr(ip_out) if ip_rc == 0 else None
        known: dict[str, int | None] = {n: pids[n] for n in SERVICES}
        return TargetFacts(remote, running, missing, os_ids, live, known, addrs)


def gather_facts(
    t: Transport, svc: ServiceManager, files: Mapping[str, RenderedFile]
) -> TargetFacts:
    """The facts in one round trip of their own (a deploy without its lock)."""
    q = FactsQuery(t, svc, files)
    res = t.run(q.argv, timeout=60, check=True)
    return q.parse(res.out, res.err)


def _roll_back_changed(
    results: Sequence[HostResult], deployers: Mapping[str, HostDeployer], why: str
) -> None:
    def undo(r: HostResult) -> None:
        r.error, r.status = why, HostState.ROLLED_BACK
        try:
            deployers[r.host].rollback()
        except HalbError as e:
            r.status, r.rollback_error = HostState.FAILED, str(e)

    changed = [r for r in results if r.status is HostState.CHANGED]
    with ThreadPoolExecutor(max_workers=max(1, len(changed))) as pool:
        list(pool.map(undo, changed))  # all hosts at once, as they were applied


def deploy(
    cluster: Cluster,
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    *,
    limit: Sequence[str] = (),
    dry_run: bool = False,
    install: bool = True,
    diff: Callable[[list[str]], None] | None = None,
    transport_for: TransportFactory = for_host,
    progress: Progress = _quiet,
    vip_timeout: float | None = None,
    lock: bool = True,
) -> DeployReport:
    """Plan, then (unless dry_run) apply to every LB host (or the `limit` ones) and verify."""
    t_start = time.monotonic()
    stages: dict[str, float] = {}
    mark = [t_start]

    def stage(name: str) -> None:
        now = time.monotonic()
        stages[name] = round(now - mark[0], 3)
        mark[0] = now

    lbs: dict[str, Host] = {h.name: h for h in cluster.lb_hosts}
    unknown = [h for h in limit if h not in lbs]
    if unknown:
        raise InputError(
            f"--limit {', '.join(unknown)}: not an LB host (LB hosts: {', '.join(lbs)})"
        )
    targets = [h for h in lbs if not limit or h in limit]
    transports: dict[str, Transport] = {}
    managers: dict[str, ServiceManager] = {}
    local_lock = LocalLock(cluster.config_path) if lock and not dry_run else None
    locks: list[RemoteLock] = []
    try:
        if local_lock:
            local_lock.acquire()
        for name, host in lbs.items():
            transports[name] = transport_for(host)
            managers[name] = manager(cluster.service_manager(host), transports[name])

        def connect(name: str) -> TargetFacts:
            t = transports[name]
            if local_lock:
                q = FactsQuery(t, managers[name], rendered[name])
                rl = RemoteLock(t, f"{socket.gethostname()} pid {os.getpid()} since {utc_now()}")
                out = rl.acquire(timeout=60, then=q.argv, done=q.complete)
                locks.append(rl)
                facts = q.parse(out)
            else:
                facts = gather_facts(t, managers[name], rendered[name])
            progress(name, "connected")
            return facts

        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            facts = dict(zip(targets, pool.map(connect, targets), strict=True))
        stage("connect")
        plan = compute_plan(
            {h: rendered[h] for h in targets},
            facts,
            {h: managers[h].kind for h in targets},
            install=install,
        )
        missing = [(h.host, p) for h in plan.hosts for p in facts[h.host].missing if not install]
        if missing and not dry_run:
            raise DeployError(
                "; ".join(f"{h}: {p} is not installed" for h, p in missing)
                + " (--no-install was given)"
            )
        if diff is not None:
            wanted = [
                (h.host, f.path)
                for h in plan.hosts
                for f in h.changed_files
                if f.action == Action.UPDATE
            ]

            def fetch(key: tuple[str, str]) -> str:
                return transports[key[0]].get(key[1]).decode("utf-8", "replace")

            with ThreadPoolExecutor(max_workers=max(1, len(transports))) as pool:
                old = dict(zip(wanted, pool.map(fetch, wanted), strict=True))
            diff(diff_lines(plan, old, [cluster.auth_password]))
        stage("plan")
        if dry_run:
            return DeployReport(
                plan, [], {}, None, True, round(time.monotonic() - t_start, 3), stages
            )

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        deployers = {
            h.host: HostDeployer(
                h, transports[h.host], managers[h.host], progress, stamp, facts[h.host].pids
            )
            for h in plan.hosts
        }
        with ThreadPoolExecutor(max_workers=max(1, len(deployers))) as pool:
            results = list(pool.map(lambda d: d.run(), deployers.values()))
        stage("apply")

        vips = {v.name: v.address for v in cluster.vips}
        wait = vip_timeout if vip_timeout is not None else max(10.0, 4 * cluster.advert_int + 5)
        # a peer whose keepalived just started or reloaded may still take a VIP over, the
        # one with the highest priority only after its preempt delay
        moved = any(h.service("keepalived") != ServiceAction.NONE for h in plan.hosts)
        delay = max((v.preempt_delay for v in cluster.vips), default=0.0)
        settle = 2 * cluster.advert_int + 1 + delay if moved else 0.0
        failed = [r.host for r in results if not r.ok]
        if failed:
            # all or nothing: peers must not run different configs
            _roll_back_changed(results, deployers, f"rolled back: {', '.join(failed)} failed")
            holders, _ = wait_for_vips(transports, vips, timeout=0)
            vip_error = None
        else:
            top = {
                v.name: max(v.priorities, key=lambda h: v.priorities[h])
                for v in cluster.vips
                if v.priorities and not cluster.spec.vrrp.nopreempt
            }
            # keepalived untouched everywhere (nothing changed, or HAProxy reloaded only):
            # the addresses each host read last under this deploy's lock (with its facts,
            # or after its reload) are the first look, so a settled pair needs no further
            # round trip.
            first = None
            if not moved:
                changed = {h.host for h in plan.hosts if h.changed}
                seen = {
                    h: deployers[h].addrs
                    if h in changed
                    else (facts[h].addrs if h in facts else None)
                    for h in transports
                }
                first = {h: a for h, a in seen.items() if a is not None}
                first = first if len(first) == len(seen) else None
            holders, vip_error = wait_for_vips(
                transports, vips, timeout=wait + settle, settle=settle, final=top, first=first
            )
            if vip_error:
                progress("-", f"VIP check failed: {vip_error}")
                _roll_back_changed(results, deployers, f"VIP check failed: {vip_error}")
            else:
                progress("-", "VIPs: " + ", ".join(f"{v}@{h[0]}" for v, h in holders.items()))
        stage("vips")
        return DeployReport(
            plan, results, holders, vip_error, False, round(time.monotonic() - t_start, 3), stages
        )
    finally:
        held = {rl.t.name: rl for rl in locks}

        def finish(t: Transport) -> None:
            if t.name in held:
                held[t.name].release()
            t.close()

        # each host waits for its lock holder to end and its connection to close: all at once
        with ThreadPoolExecutor(max_workers=max(1, len(transports))) as pool:
            list(pool.map(finish, transports.values()))
        if local_lock:
            local_lock.release()
        stage("close")
