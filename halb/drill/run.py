"""The drill's rounds: holders, load, captures, fault, restore, steady state (effects).

One round: check each VIP has exactly one holder; start the packet captures and the
client load; inject the fault on the holder of the first VIP; watch the holders until the
fault has done what it does (or its hold time ends); restore; wait for a steady state;
keep the load on a little longer to see the second outage; stop and collect. Whatever
happens (an error, Ctrl-C), the fault is restored and the load and captures stopped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from halb.drill import capture, faults, rogue
from halb.drill.fault_kinds import KINDS, Fault, FaultKind, Hits
from halb.drill.load import ProcessLoad, Target
from halb.drill.model import Packet, RoundRecord, family, lane
from halb.errors import CheckFailed, HalbError, InputError
from halb.facts.ipaddr import IfAddr, holders, read_addrs
from halb.inventory import Host
from halb.services import ServiceManager, manager
from halb.spec import Cluster
from halb.spec.profiles import master_down
from halb.transport import Transport, TransportFactory, for_host

PRE = 0.8  # load before the fault, seconds
POST = 0.6  # load after the steady state, seconds
SETTLE_MAX = 30.0  # a steady state must come within this after the restore
POLL = 0.2


@dataclass(frozen=True)
class Settings:
    faults: tuple[str, ...]
    rounds: int
    rate: float
    timeout: float
    max_outage: float | None
    max_failback_failed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "faults": list(self.faults),
            "rounds": self.rounds,
            "rate": self.rate,
            "timeout": self.timeout,
            "max_outage": self.max_outage,
            "max_failback_failed": self.max_failback_failed,
        }


def lanes_of(cluster: Cluster) -> dict[str, tuple[str, str, str]]:
    """Lane -> (frontend, address, VIP label): every VIP address of every frontend, so a
    dual-stack frontend is probed over both families ("apiserver", "apiserver6")."""
    labels = {(v.name, v.address): v.label for v in cluster.vips}
    out: dict[str, tuple[str, str, str]] = {}
    for fe in cluster.frontends:
        for address in fe.addresses:
            name = lane(fe.name, family(address))
            if name in out:
                other = out[name][0]
                six, plain = (fe.name, other) if family(address) == 6 else (other, fe.name)
                raise InputError(
                    f"frontends.{plain}: the drill names the probes through the IPv6 VIP of "
                    f"frontends.{six} {name}, as this frontend is named; rename it"
                )
            out[name] = (fe.name, address, labels.get((fe.vip_name, address), fe.vip_name))
    return out


def targets_of(cluster: Cluster) -> list[Target]:
    out = []
    for name, (fe_name, address, _) in lanes_of(cluster).items():
        fe = cluster.frontend(fe_name)
        assert fe is not None
        if fe.check == "readyz":
            out.append(Target(name, address, fe.port, tls=True, path="/readyz"))
        elif fe.check == "http" or fe.mode == "http":
            out.append(Target(name, address, fe.port, tls=False, path="/"))
        else:
            out.append(Target(name, address, fe.port, tls=False, path=None))
    return out


def rogue_vips(cluster: Cluster, faults: Sequence[str]) -> tuple[tuple[int, str], ...]:
    """(router id, address) of the VIPs the rogue faults forge frames for: the IPv4 ones
    (on a dual-stack cluster its IPv6 VIPs are left alone); none at all is refused."""
    asked = [f for f in faults if KINDS[Fault(f)].hits is Hits.ROGUE]
    if not asked:
        return ()
    vips = tuple((v.router_id, v.address) for v in cluster.vips if v.family == 4)
    if not vips:
        raise InputError(
            f"--fault {asked[0]}: the rogue faults forge IPv4 frames (VRRP, ARP) only, and "
            "every VIP of this cluster is IPv6"
        )
    return vips


def rogue_host(cluster: Cluster) -> Host:
    """The host the rogue faults send from: the last inventory host that is not an LB host
    (a node before a master), with an address."""
    lbs = set(cluster.lb_host_names)
    others = [h for h in cluster.inventory.hosts.values() if h.name not in lbs and h.ip]
    if not others:
        raise InputError(
            "the rogue faults send from a host that is not an LB host: the inventory has none"
        )
    return others[-1]


def rogue_nic(t: Transport, vip: str) -> tuple[str, str]:
    """The rogue host's interface towards the VIPs and its MAC."""
    res = t.run(["ip", "-o", "route", "get", vip], timeout=15, check=True)
    words = res.out.split()
    if "dev" not in words[:-1]:
        raise HalbError(f"{t.name}: no route to {vip}: {res.out.strip()}")
    dev = words[words.index("dev") + 1]
    mac = t.run(["cat", f"/sys/class/net/{dev}/address"], timeout=15, check=True).out.strip()
    return dev, mac.lower()


def local_interface(address: str) -> str | None:
    """The interface this host reaches `address` through (for the client-side capture)."""
    try:
        cp = subprocess.run(
            ["ip", "-o", "route", "get", address], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = cp.stdout.split()
    return words[words.index("dev") + 1] if "dev" in words[:-1] else None


class Drill:
    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        *,
        transport_for: TransportFactory = for_host,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.cluster = cluster
        self.s = settings
        self.say = say
        self.rogue_vips = rogue_vips(cluster, settings.faults)  # refused before any host
        self.lanes = lanes_of(cluster)
        self.lbs: list[Host] = list(cluster.lb_hosts)
        self.t: dict[str, Transport] = {h.name: transport_for(h) for h in self.lbs}
        self.svc: dict[str, ServiceManager] = {
            h.name: manager(cluster.service_manager(h), self.t[h.name]) for h in self.lbs
        }
        self.vips = {v.label: v.address for v in cluster.vips}
        self.iface = cluster.vips[0].interface
        self.advert = float(cluster.advert_int)
        self.targets = targets_of(cluster)
        self.masters: list[Transport] = []
        if any(KINDS[Fault(f)].hits is Hits.MASTERS for f in settings.faults):
            fe = cluster.frontend("apiserver")
            names = [b.name for b in fe.backends] if fe else []
            hosts = cluster.inventory.hosts
            self.masters = [transport_for(hosts[n]) for n in names if n in hosts]
        self.rogue: Transport | None = None
        self._rogue_host: Host | None = None
        self._rogue_nic: tuple[str, str] | None = None  # its interface to the VIPs, its MAC
        if any(KINDS[Fault(f)].hits is Hits.ROGUE for f in settings.faults):
            self._rogue_host = rogue_host(cluster)
            self.rogue = transport_for(self._rogue_host)
        self.lb_addresses = {h.name: cluster.host_ip(h) for h in self.lbs}
        self.macs: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=4 * len(self.lbs) + 4)
        self._inflight: dict[str, Future[tuple[IfAddr, ...] | None]] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for t in [*self.t.values(), *self.masters, *([self.rogue] if self.rogue else [])]:
            t.close()

    # ------------------------------------------------------------------ observations
    def holders(self, timeout: float = 10) -> dict[str, list[str]]:
        """VIP name -> LB hosts that have it; an unreachable host counts as holding none.

        A command through an SSH ControlMaster can outlive its timeout (the master keeps
        its pipes until the remote side answers), so a host whose last poll has not
        returned is skipped and nobody waits longer than `timeout` for an answer.
        """
        futs: dict[str, Future[tuple[IfAddr, ...] | None]] = {}
        for name, t in self.t.items():
            prev = self._inflight.get(name)
            if prev is not None and not prev.done():
                continue
            futs[name] = self._pool.submit(self._addrs, t, timeout)
            self._inflight[name] = futs[name]
        done, _ = wait(list(futs.values()), timeout=timeout + 0.5)
        seen = {n: futs[n].result() for n in self.t if n in futs and futs[n] in done}
        return holders({n: a for n, a in seen.items() if a is not None}, self.vips)

    @staticmethod
    def _addrs(t: Transport, timeout: float) -> tuple[IfAddr, ...] | None:
        try:
            return read_addrs(t, timeout)
        except HalbError:
            return None

    def learn_macs(self) -> None:
        for name, t in self.t.items():
            res = t.run(["cat", f"/sys/class/net/{self.iface}/address"], timeout=15, check=True)
            self.macs[name] = res.out.strip().lower()

    def preflight(self) -> None:
        if any(KINDS[Fault(f)].lab_only for f in self.s.faults):
            faults.require_lab_apiserver(self.masters)
        self.learn_macs()

    # ----------------------------------------------------------------------- timings
    def detect(self) -> float:
        """A backup's master-down time: 3 adverts plus at most one advert of skew."""
        return master_down(self.advert)

    def hold(self, fault: str) -> float:
        """How long a fault may take to show its effect before it is restored."""
        return KINDS[Fault(fault)].hold(self.detect())

    def failback_allowance(self) -> float:
        """What a returning old holder waits before it takes its VIPs back: failback.sh's
        hold, the preempt delay, and HAProxy's checks rising with keepalived's start."""
        delay = max((v.preempt_delay for v in self.cluster.vips), default=0.0)
        return self.cluster.failback_hold + delay + 5.0

    def settle_window(self) -> float:
        """Holders unchanged for this long is a steady state when they are not the ones
        from before the fault. It covers what a returning peer goes through before it
        preempts: keepalived's start, the HAProxy check's rise, failback.sh's hold and its
        master-down timer. Back as before the fault, a master-down time is enough."""
        return self.detect() + 3.5 + self.failback_allowance()

    def settle_max(self) -> float:
        """A steady state must come within this after the restore."""
        return SETTLE_MAX + self.failback_allowance()

    # ------------------------------------------------------------------------- round
    def steady_holders(self) -> dict[str, list[str]]:
        """The holders once each VIP has exactly one; a handover in progress (two holders
        for a moment) is waited out for a master-down time, a lasting one is returned."""
        deadline = time.monotonic() + self.detect() + 2.0
        while True:
            h = self.holders()
            if all(len(x) == 1 for x in h.values()) or time.monotonic() > deadline:
                return h
            time.sleep(POLL)

    def run_round(self, fault: str, index: int) -> RoundRecord:
        before = self.steady_holders()
        for v, hs in before.items():
            if len(hs) != 1:
                who = " and ".join(hs) if hs else "no LB host"
                kind = "split brain" if hs else "no holder"
                raise CheckFailed(
                    f"{kind}: VIP {v} ({self.vips[v]}) is held by {who}; "
                    "the drill needs exactly one holder per VIP to start"
                )
        target = before[next(iter(self.vips))][0]
        rec = RoundRecord(
            fault=fault,
            index=index,
            target=target,
            vips=dict(self.vips),
            frontends={name: vip for name, (_, _, vip) in self.lanes.items()},
            lb_addresses=dict(self.lb_addresses),
            macs=dict(self.macs),
            rate=self.s.rate,
            holders_before=before,
        )
        hold = self.hold(fault)
        limit = PRE + hold + self.settle_max() + self.settle_window() + POST + 20
        caps = self._start_captures(limit)
        load = ProcessLoad(self.targets, rate=self.s.rate, timeout=self.s.timeout, limit=limit)
        try:
            load.start()
            rec.t_start = time.time()
            time.sleep(PRE)
            self._fault(rec, fault, target, hold)
            self._settle(rec)
            time.sleep(POST)
        finally:
            rec.t_end = time.time()
            rec.probes = load.stop()
            packets: list[Packet] = []
            for c in caps:
                with contextlib.suppress(Exception):
                    packets += c.stop()
            rec.packets = sorted(packets, key=lambda p: p.ts)
        if load.overloaded:
            rec.notes.append(f"{load.overloaded} probes not started: too many in flight")
        rec.holders_end = self.holders()
        return rec

    def _start_captures(self, limit: float) -> list[capture.Capture]:
        addrs = list(self.vips.values())
        caps = [capture.start_remote(t, self.iface, limit, addrs) for t in self.t.values()]
        if os.geteuid() == 0:
            dev = local_interface(addrs[0])
            if dev:
                caps.append(capture.start_local("client", dev, limit, addrs))
        deadline = time.monotonic() + 10
        for c in caps:
            c.ready.wait(max(0.1, deadline - time.monotonic()))
        return caps

    # ---------------------------------------------------------------------- faults
    def _fault(self, rec: RoundRecord, fault: str, target: str, hold: float) -> None:
        fid = f"{fault}-{secrets.token_hex(4)}"
        kind = KINDS[Fault(fault)]
        if kind.service is not None:
            svc = self.svc[target]
            try:
                rec.t_fault = faults.inject_service(kind.service, svc)
                self._watch(rec, kind, target, rec.t_fault + hold)
            finally:
                rec.t_restore = time.time()
                faults.restore_service(kind.service, svc)
            return
        where = self._fault_hosts(kind, target)
        args = self._fault_args(kind, fid, hold)
        if kind.rogue is not None and len(self.rogue_vips) < len(self.vips):
            six = ", ".join(a for a in self.vips.values() if family(a) == 6)
            rec.notes.append(f"the rogue forges IPv4 frames only: IPv6 VIPs {six} not attacked")
        armed: list[Transport] = []
        times: list[tuple[float | None, float | None]] = []
        start = time.time()
        futs = []
        try:
            backstop = kind.backstop(hold)
            # Restore everywhere whatever happens from here (an arm that failed or was
            # interrupted may have armed). Every host at once, so a partition starts and
            # heals on both sides together.
            armed = list(where)
            with ThreadPoolExecutor(max_workers=len(where)) as ex:
                futs = [ex.submit(faults.arm, t, kind.script, fid, backstop, *args) for t in where]
            for fut in futs:
                fut.result()
            self._watch(rec, kind, target, start + hold)
            if kind.restores_itself:
                # the host brings its link back by itself; reach it again after that
                time.sleep(max(0.0, start + hold + 0.3 - time.time()))
        finally:
            if armed:
                times = self._restore_hosts(armed, kind, fid, args, target)
        injected = [x for x, _ in times if x is not None]
        restored = [y for _, y in times if y is not None]
        rec.t_fault = min(injected) if injected else start
        rec.t_restore = max(restored) if restored else time.time()

    def _restore_hosts(
        self, armed: list[Transport], kind: FaultKind, fid: str, args: Sequence[str], target: str
    ) -> list[tuple[float | None, float | None]]:
        """Restore every armed host, at once. A partition heals on the old holder first:
        when a link is repaired both sides hear each other at the same moment, and the old
        holder hearing the other's adverts is what makes it send fresh gratuitous ARPs.
        Healed the other side first, for a few ms only the host that gives the VIP up
        hears the other one, and its single advert in reply is dropped (measured: with
        0.03 s adverts 7 rounds of 10 left the clients on the host without the VIP)."""
        first = [t for t in armed if kind.heal_holder_first and t.name == target]
        rest = [t for t in armed if t not in first]
        times = [self._disarm(t, kind, fid, args) for t in first]
        if rest:
            with ThreadPoolExecutor(max_workers=len(rest)) as ex:
                times += list(ex.map(lambda t: self._disarm(t, kind, fid, args), rest))
        return times

    def _disarm(
        self, t: Transport, kind: FaultKind, fid: str, args: Sequence[str]
    ) -> tuple[float | None, float | None]:
        deadline = time.monotonic() + 30
        while True:
            try:
                return faults.disarm(t, kind.script, fid, *args)
            except HalbError as e:
                if time.monotonic() > deadline:
                    self.say(f"{t.name}: could not confirm the restore ({e}); its timer restores")
                    return None, None
                time.sleep(0.5)

    def _fault_hosts(self, kind: FaultKind, target: str) -> list[Transport]:
        return {
            Hits.HOLDER: [self.t[target]],
            Hits.LB_HOSTS: list(self.t.values()),
            Hits.MASTERS: list(self.masters),
            Hits.ROGUE: [self.rogue] if self.rogue else [],
        }[kind.hits]

    def _fault_args(self, kind: FaultKind, fid: str, hold: float) -> list[str]:
        if kind.rogue is None:
            return [self.iface] if kind.takes_interface else []
        # the rogue's frames go to a 0600 file on it (a right password is in them)
        assert self.rogue is not None and self._rogue_host is not None
        if self._rogue_nic is None:
            self._rogue_nic = rogue_nic(self.rogue, self.rogue_vips[0][1])
        dev, mac = self._rogue_nic
        target = rogue.Target(
            vips=self.rogue_vips,
            lbs=tuple((self.lb_addresses[h.name], self.macs[h.name]) for h in self.lbs),
            version=self.cluster.vrrp_version,
            advert_int=self.advert,
            password=self.cluster.auth_password,
            rogue_ip=self.cluster.host_ip(self._rogue_host),
            rogue_mac=mac,
        )
        path = f"{faults.STATE_DIR}/{fid}.frames"
        self.rogue.run(["mkdir", "-p", "-m", "700", faults.STATE_DIR], timeout=15, check=True)
        self.rogue.put(path, rogue.frames_file(rogue.frames(kind.rogue, target)), 0o600)
        every = rogue.interval(kind.rogue, self.advert)
        return [path, dev, f"{every:.3f}", f"{hold + 5:.3f}"]

    def _watch(self, rec: RoundRecord, kind: FaultKind, target: str, until: float) -> None:
        """Poll the holders until the fault's effect is seen (plus a margin) or `until`."""
        first = next(iter(self.vips))
        done_at: float | None = None
        while time.time() < until:
            h = self.holders(timeout=1.0)
            now = time.time()
            rec.polls.append((now, h))
            if done_at is None and kind.effect_seen(target, h, first):
                done_at = now
            if kind.stops_early and done_at is not None and now - done_at >= 1.0:
                return
            time.sleep(POLL)

    def _settle(self, rec: RoundRecord) -> None:
        """Wait until each VIP has one holder, unchanged for the settle window (a
        master-down time once the holders are back as before the fault)."""
        most = self.settle_max()
        deadline = time.time() + most
        window, home_window = self.settle_window(), self.detect() + 1.0
        last: dict[str, list[str]] | None = None
        since = time.time()
        while time.time() < deadline:
            h = self.holders(timeout=2.0)
            now = time.time()
            if h != last:
                last, since = h, now
            elif all(len(x) == 1 for x in h.values()):
                home = h == rec.holders_before
                if now - since >= (home_window if home else window):
                    return
            time.sleep(POLL)
        rec.notes.append(f"no steady state within {most:g} s after the restore: {last}")
