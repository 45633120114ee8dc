"""`deploy()`: connect and lock, gather facts, plan, apply on every host in parallel,
check the VIPs, and roll every changed host back when any of that fails (peers must not
run different configs). Each phase is a function that returns what the next one needs."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from halb import vrrp_filter
from halb.deploy.apply import HostDeployer, HostProgress
from halb.deploy.locks import LocalLock, RemoteLock, utc_now
from halb.deploy.plan import Action, Plan, ServiceAction, compute_plan, diff_lines, sysctl_keys
from halb.deploy.report import DeployReport, HostResult, HostState
from halb.deploy.settle import first_look, vip_wait_for
from halb.deploy.vips import wait_for_vips
from halb.errors import DeployError, HalbError, InputError
from halb.facts.ipaddr import IP_ADDR, parse_ip_addr
from halb.facts.target import TargetFacts, facts_argv, parse_facts_output
from halb.gather import learn_macs
from halb.paths import SYSCTL_CONF, VRRP_NFT
from halb.render import HostFiles, RenderedFile, with_vrrp_filter
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
        cmds = [facts_argv(self.paths, keys), IP_ADDR, svc.pids_argv(SERVICES)]
        self.argv, self.marker = batch(cmds)
        self.count = len(cmds)

    def complete(self, out: str) -> bool:
        return split_batch(out, self.marker, self.count) is not None

    def parse(self, out: str, err: str = "") -> TargetFacts:
        parts = split_batch(out, self.marker, self.count)
        if parts is None:
            raise self.t.error("the facts script's answer was cut short")
        (rc, facts_out), (ip_rc, ip_out), (pids_rc, pids_out) = parts
        if rc != 0:
            why = err.strip() or facts_out.strip() or "no output"
            raise self.t.error(f"the facts script exited {rc}: {why}")
        remote, missing, os_ids, live = parse_facts_output(self.paths, facts_out)
        pids = self.svc.parse_pids(pids_out if pids_rc == 0 else "", SERVICES)
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


class Stages:
    """Seconds each phase of a deploy took, in order."""

    def __init__(self) -> None:
        self.start = self._mark = time.monotonic()
        self.seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._mark, 3)
        self._mark = now

    def total(self) -> float:
        return round(time.monotonic() - self.start, 3)


@dataclass
class Hosts:
    """Every LB host's transport and service manager, and the remote locks this deploy
    holds on them."""

    transports: dict[str, Transport] = field(default_factory=dict)
    managers: dict[str, ServiceManager] = field(default_factory=dict)
    locks: list[RemoteLock] = field(default_factory=list)

    def close(self) -> None:
        """Release every lock and close every connection, all hosts at once (each waits
        for its lock holder to end and its connection to close)."""
        held = {rl.t.name: rl for rl in self.locks}

        def finish(t: Transport) -> None:
            if t.name in held:
                held[t.name].release()
            t.close()

        with ThreadPoolExecutor(max_workers=max(1, len(self.transports))) as pool:
            list(pool.map(finish, self.transports.values()))


@dataclass(frozen=True)
class VipCheck:
    holders: dict[str, list[str]]
    error: str | None


def _targets(cluster: Cluster, limit: Sequence[str]) -> list[str]:
    lbs = [h.name for h in cluster.lb_hosts]
    unknown = [h for h in limit if h not in lbs]
    if unknown:
        raise InputError(
            f"--limit {', '.join(unknown)}: not an LB host (LB hosts: {', '.join(lbs)})"
        )
    return [h for h in lbs if not limit or h in limit]


def _open(hosts: Hosts, cluster: Cluster, transport_for: TransportFactory) -> None:
    """A transport and a service manager for every LB host (filled in as they are made,
    so the ones made before a failure are closed too)."""
    for h in cluster.lb_hosts:
        t = hosts.transports[h.name] = transport_for(h)
        hosts.managers[h.name] = manager(cluster.service_manager(h), t)


def _learn_macs(
    hosts: Hosts,
    cluster: Cluster,
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    progress: HostProgress,
) -> tuple[dict[str, dict[str, str]], dict[str, HostFiles], set[str]]:
    """Every LB host's MAC on the VIPs' interfaces (all of them, also outside --limit: each
    host's filter lists its peers), the rendered files with each host's VRRP filter
    (none on a host without nft: it is deployed as before, and says so), and the hosts
    where the filter is loaded now."""
    macs, no_nft, missing, loaded = learn_macs(hosts.transports, vrrp_filter.interfaces(cluster))
    if missing:
        # keepalived's own check on the host then says what is wrong, as before
        for h, ifaces in missing.items():
            progress(h, f"no {', '.join(ifaces)} here: halb's VRRP filter is left out")
        return macs, {h: dict(f) for h, f in rendered.items()}, loaded
    files = with_vrrp_filter(cluster, rendered, macs)
    for h in no_nft:
        progress(h, "no nft: halb's VRRP filter is not loaded here (install nftables)")
        files[h] = {p: f for p, f in files[h].items() if p != VRRP_NFT}
    return macs, files, loaded


def _connect(
    hosts: Hosts,
    targets: Sequence[str],
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    *,
    lock: bool,
    progress: HostProgress,
) -> dict[str, TargetFacts]:
    """Every target's facts, read under its remote lock (when `lock`), all at once."""

    def connect(name: str) -> TargetFacts:
        t, svc = hosts.transports[name], hosts.managers[name]
        if lock:
            q = FactsQuery(t, svc, rendered[name])
            rl = RemoteLock(t, f"{socket.gethostname()} pid {os.getpid()} since {utc_now()}")
            out = rl.acquire(timeout=60, then=q.argv, done=q.complete)
            hosts.locks.append(rl)
            facts = q.parse(out)
        else:
            facts = gather_facts(t, svc, rendered[name])
        progress(name, "connected")
        return facts

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        return dict(zip(targets, pool.map(connect, targets), strict=True))


def _plan(
    hosts: Hosts,
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    facts: Mapping[str, TargetFacts],
    *,
    install: bool,
    dry_run: bool,
) -> Plan:
    plan = compute_plan(
        {h: rendered[h] for h in facts},
        facts,
        {h: hosts.managers[h].kind for h in facts},
        install=install,
    )
    missing = [(h.host, p) for h in plan.hosts for p in facts[h.host].missing if not install]
    if missing and not dry_run:
        raise DeployError(
            "; ".join(f"{h}: {p} is not installed" for h, p in missing)
            + " (--no-install was given)"
        )
    return plan


def _show_diff(
    hosts: Hosts, plan: Plan, secrets: Sequence[str | None], diff: Callable[[list[str]], None]
) -> None:
    """The diff of every updated file against the host's copy (read in parallel)."""
    wanted = [
        (h.host, f.path) for h in plan.hosts for f in h.changed_files if f.action == Action.UPDATE
    ]

    def fetch(key: tuple[str, str]) -> str:
        return hosts.transports[key[0]].get(key[1]).decode("utf-8", "replace")

    with ThreadPoolExecutor(max_workers=max(1, len(hosts.transports))) as pool:
        old = dict(zip(wanted, pool.map(fetch, wanted), strict=True))
    diff(diff_lines(plan, old, list(secrets)))


def _apply(
    hosts: Hosts,
    plan: Plan,
    facts: Mapping[str, TargetFacts],
    progress: HostProgress,
    macs: Mapping[str, Mapping[str, str]],
) -> tuple[list[HostResult], dict[str, HostDeployer]]:
    """Every host's plan applied, all hosts at once."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    deployers = {
        h.host: HostDeployer(
            h,
            hosts.transports[h.host],
            hosts.managers[h.host],
            progress,
            stamp,
            facts[h.host].pids,
            macs.get(h.host),
        )
        for h in plan.hosts
    }
    with ThreadPoolExecutor(max_workers=max(1, len(deployers))) as pool:
        results = list(pool.map(lambda d: d.run(), deployers.values()))
    return results, deployers


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


def _check_vips(
    cluster: Cluster,
    hosts: Hosts,
    plan: Plan,
    facts: Mapping[str, TargetFacts],
    deployers: Mapping[str, HostDeployer],
    vip_timeout: float | None,
) -> VipCheck:
    """Wait for one holder per VIP, settled (halb.deploy.settle says how long)."""
    touched = any(h.service("keepalived") != ServiceAction.NONE for h in plan.hosts)
    limits = vip_wait_for(
        cluster.advert_int,
        # a host whose keepalived just started comes back low, and takes its VIPs back
        # once it has been healthy for failback_hold (failback.sh)
        [v.preempt_delay + cluster.failback_hold for v in cluster.vips],
        {v.label: v.priorities for v in cluster.vips},
        nopreempt=cluster.spec.vrrp.nopreempt,
        keepalived_touched=touched,
        timeout=vip_timeout,
    )
    # keepalived untouched everywhere (nothing changed, or HAProxy reloaded only): the
    # addresses each host read last under this deploy's lock are the first look, so a
    # settled pair needs no further round trip.
    first = None
    if not touched:
        changed = {h.host: deployers[h.host].addrs for h in plan.hosts if h.changed}
        first = first_look(list(hosts.transports), changed, {h: f.addrs for h, f in facts.items()})
    holders, error = wait_for_vips(
        hosts.transports,
        {v.label: v.address for v in cluster.vips},
        timeout=limits.timeout,
        settle=limits.settle,
        final=limits.final,
        first=first,
    )
    return VipCheck(holders, error)


def deploy(
    cluster: Cluster,
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    *,
    limit: Sequence[str] = (),
    dry_run: bool = False,
    install: bool = True,
    diff: Callable[[list[str]], None] | None = None,
    transport_for: TransportFactory = for_host,
    progress: HostProgress = _quiet,
    vip_timeout: float | None = None,
    lock: bool = True,
) -> DeployReport:
    """Plan, then (unless dry_run) apply to every LB host (or the `limit` ones) and verify."""
    stages = Stages()
    targets = _targets(cluster, limit)
    locked = lock and not dry_run
    local_lock = LocalLock(cluster.config_path) if locked else None
    hosts = Hosts()
    try:
        if local_lock:
            local_lock.acquire()
        _open(hosts, cluster, transport_for)
        macs, rendered, loaded = _learn_macs(hosts, cluster, rendered, progress)
        facts = _connect(hosts, targets, rendered, lock=locked, progress=progress)
        facts = {h: replace(f, vrrp_filter_loaded=h in loaded) for h, f in facts.items()}
        stages.done("connect")
        plan = _plan(hosts, rendered, facts, install=install, dry_run=dry_run)
        if diff is not None:
            _show_diff(hosts, plan, [cluster.auth_password], diff)
        stages.done("plan")
        if dry_run:
            return DeployReport(plan, [], {}, None, True, stages.total(), stages.seconds)

        results, deployers = _apply(hosts, plan, facts, progress, macs)
        stages.done("apply")
        failed = [r.host for r in results if not r.ok]
        if failed:
            # all or nothing: peers must not run different configs
            _roll_back_changed(results, deployers, f"rolled back: {', '.join(failed)} failed")
            # one look at where the VIPs are now: nothing to wait for
            now = {v.label: v.address for v in cluster.vips}
            holders, _ = wait_for_vips(hosts.transports, now, timeout=0)
            vips = VipCheck(holders, None)
        else:
            vips = _check_vips(cluster, hosts, plan, facts, deployers, vip_timeout)
            if vips.error:
                progress("-", f"VIP check failed: {vips.error}")
                _roll_back_changed(results, deployers, f"VIP check failed: {vips.error}")
            else:
                held = ", ".join(f"{v}@{h[0]}" for v, h in vips.holders.items())
                progress("-", "VIPs: " + held)
        stages.done("vips")
        return DeployReport(
            plan, results, vips.holders, vips.error, False, stages.total(), stages.seconds
        )
    finally:
        hosts.close()
        if local_lock:
            local_lock.release()
        stages.done("close")
