#!/usr/bin/env python3
"""Benchmark: the data plane through the VIP against straight to the backend, and reloads
under load. Needs root; builds its own lab and always takes it down.

1. wrk in the taskbox, side by side and alternating in each round: the same backend
   (master1 for TLS on 6443, node1 for HTTP on 30880) once straight and once through the
   VIP (HAProxy as halb renders it, with that one backend). Ratio = through-VIP / direct
   requests per second, per round; median and spread over the rounds. Both paths do the
   same work: every request is a new connection end to end (HTTP: wrk sends
   `Connection: close`, so HAProxy closes the client side after each answer as the
   backend does; TLS: the lab apiserver closes after each answer, and HAProxy passes TLS
   through in TCP mode, so each request is a full handshake with the backend).
   A third row keeps connections open on both paths: a second lab console on node1
   (`--keep-alive`, port 30890) behind a frontend of its own; wrk keeps its 16
   connections, HAProxy keeps its server connections.
   CPU of HAProxy (the VIP holder's workers), wrk and the backend is measured per run
   (100 % = one core of two).
   The taskbox reuses its own TIME_WAIT ports (`net.ipv4.tcp_tw_reuse=1`, set in the
   taskbox's network namespace only): without it wrk, which closes first, left ~14 000
   sockets in TIME_WAIT (the half of the 28 232 ephemeral ports that connect() takes
   first) and fell from ~4 300 to ~100 req/s within 30 s of runs.
2. Reload under load: wrk through the console VIP while `halb deploy` applies N config
   changes one after the other (a health-check interval, so haproxy.cfg changes and HAProxy
   reloads). Counted: failed requests, VIP holder changes (polled), HAProxy masters
   (must stay), old workers left after the load (must drain to one per host).

    sudo python3 bench/dataplane_bench.py              # run, update bench/README.md
    sudo python3 bench/dataplane_bench.py --no-write   # run, print only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml
from labbench import WrkResult, header, lab, parse_wrk, spread, verdict, write_section, wrk_command

import halb
from halb.lab import Lab, netns

BEGIN, END = "<!-- DATAPLANE:BEGIN -->", "<!-- DATAPLANE:END -->"
TARGET_RATIO = 0.8
KEEPALIVE_PORT = 30890  # a second console on the HTTP backend, serving keep-alive


# ------------------------------------------------------------------------------- lab set-up


def bench_spec(L: Lab, backend_api: str, backend_console: str) -> Path:
    """The lab's spec and inventory, with each frontend in front of one backend only."""
    inv = L.dir / "bench-hosts.ini"
    inv.write_text(
        L.inventory.read_text()
        + f"\n[bench-api]\n{backend_api}\n\n[bench-console]\n{backend_console}\n"
    )
    inv.chmod(0o600)
    data = yaml.safe_load(L.spec.read_text())
    data["inventory"] = str(inv)
    data["frontends"]["apiserver"]["backends"] = "bench-api"
    data["frontends"]["console"]["backends"] = "bench-console"
    data["frontends"]["keepalive"] = {
        "vip": "external",
        "port": KEEPALIVE_PORT,
        "backends": "bench-console",
        "backend_port": KEEPALIVE_PORT,
        "mode": "http",
    }
    spec = L.dir / "bench.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def reuse_time_wait(L: Lab) -> str:
    """Let the taskbox's connect() reuse its own TIME_WAIT ports (per network namespace:
    the machine's own setting is not touched). Returns the taskbox's values."""
    L.run("taskbox", ["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"], check=True)
    keys = ("net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range")
    return L.run("taskbox", ["sysctl", *keys], check=True).stdout.strip().replace("\n", "; ")


def set_inter(spec: Path, inter: str) -> None:
    data = yaml.safe_load(spec.read_text())
    data["health"] = {**data.get("health", {}), "inter": inter}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def deploy(L: Lab, spec: Path) -> dict[str, Any]:
    r = L.run("taskbox", ["halb", "deploy", "-c", str(spec), "--json"], timeout=300)
    try:
        doc: dict[str, Any] = json.loads(r.stdout)
    except json.JSONDecodeError:
        sys.exit(f"halb deploy printed no JSON (rc {r.returncode}): {r.stderr}")
    doc["rc"] = r.returncode
    return doc


def holders(L: Lab) -> tuple[tuple[str, ...], tuple[str, ...]]:
    out = []
    for vip in (L.vip_internal, L.vip_external):
        held = []
        for lb in L.lbs:
            text = L.run(lb, ["ip", "-o", "-4", "addr", "show"], timeout=30).stdout
            if f" {vip}/" in text:
                held.append(lb)
        out.append(tuple(held))
    return out[0], out[1]


def master_pid(L: Lab, lb: str) -> int:
    return int(L.run(lb, ["cat", "/run/haproxy.pid"]).stdout.split()[0])


def workers(L: Lab, lb: str) -> list[psutil.Process]:
    return psutil.Process(master_pid(L, lb)).children()


def backend_process(L: Lab, host: str, port: int) -> psutil.Process:
    addr = f"{L.address(host)}:{port}"
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any("fakeapi" in a for a in cmd) and addr in cmd:
            return p
    sys.exit(f"no lab backend process for {addr}")


def start_keepalive_console(L: Lab, host: str) -> None:
    """A console of the lab's kind that keeps connections open (`--keep-alive`), on
    KEEPALIVE_PORT of `host`; it goes with the lab's other processes at teardown."""
    src = str(Path(halb.__file__).resolve().parent.parent)
    argv = [sys.executable, "-m", "halb.lab.fakeapi", "--name", host,
            "--console", f"{L.address(host)}:{KEEPALIVE_PORT}", "--keep-alive"]  # fmt: skip
    log = L.dir / "keepalive-console.log"
    netns.spawn_daemon(L.enter_argv(host), argv, log, env={"PYTHONPATH": src})
    for _ in range(100):
        if L.run(host, ["ss", "-Htln", f"sport = :{KEEPALIVE_PORT}"]).stdout.strip():
            return
        time.sleep(0.1)
    sys.exit(f"the keep-alive console on {host} did not start (see {log})")


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


# ------------------------------------------------------------------------------ side by side


@dataclass(frozen=True)
class Run:
    wrk: WrkResult
    cpu_haproxy: float  # % of one core
    cpu_wrk: float
    cpu_backend: float


def run_wrk(
    L: Lab,
    url: str,
    seconds: int,
    conns: int,
    holder: str | None,
    backend: psutil.Process,
    extra: tuple[str, ...] = (),
) -> Run:
    wrk, env = wrk_command()
    hap = workers(L, holder) if holder else []
    before = (cpu_seconds(hap), cpu_seconds([backend]))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    argv = [*wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "2s", "--latency", *extra]
    r = L.run("taskbox", [*argv, url], env=env, timeout=seconds + 60)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"wrk failed: {r.stderr}")
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return Run(
        parse_wrk(r.stdout),
        100 * (cpu_seconds(hap) - before[0]) / wall,
        100 * wrk_cpu / wall,
        100 * (cpu_seconds([backend]) - before[1]) / wall,
    )


def side_by_side(
    L: Lab,
    name: str,
    direct: str,
    via: str,
    rounds: int,
    seconds: int,
    conns: int,
    holder: str,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    backend_host = "master1" if ":6443" in direct else "node1"
    backend = backend_process(L, backend_host, int(direct.split(":")[2].split("/")[0]))
    runs: dict[str, list[Run]] = {"direct": [], "vip": []}
    for i in range(rounds):
        order = ("direct", "vip") if i % 2 == 0 else ("vip", "direct")
        for kind in order:
            url = direct if kind == "direct" else via
            run = run_wrk(L, url, seconds, conns, holder if kind == "vip" else None, backend, extra)
            runs[kind].append(run)
            print(
                f"  {name} round {i + 1} {kind:6}: {run.wrk.rps:8.0f} req/s  "
                f"p50 {run.wrk.p50_ms:.2f} ms  p99 {run.wrk.p99_ms:.2f} ms  "
                f"failed {run.wrk.failed}  cpu haproxy {run.cpu_haproxy:.0f}% "
                f"wrk {run.cpu_wrk:.0f}% backend {run.cpu_backend:.0f}%",
                file=sys.stderr,
            )
    ratios = [v.wrk.rps / d.wrk.rps for d, v in zip(runs["direct"], runs["vip"], strict=True)]
    return {"name": name, "runs": runs, "ratio": spread(ratios)}


# ---------------------------------------------------------------------------- reload under load


def reload_under_load(L: Lab, spec: Path, changes: int, conns: int) -> dict[str, Any]:
    wrk, env = wrk_command()
    url = f"http://{L.vip_external}:30880/"
    seen: list[tuple[tuple[str, ...], tuple[str, ...]]] = [holders(L)]
    masters = {lb: master_pid(L, lb) for lb in L.lbs}
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            h = holders(L)
            if h != seen[-1]:
                seen.append(h)

    argv = [*wrk, "-t1", f"-c{conns}", "-d3600s", "--timeout", "2s", "--latency", url]
    proc = subprocess.Popen(
        [*L.enter_argv("taskbox"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    deploy_s: list[float] = []
    bad: list[str] = []
    try:
        time.sleep(2)
        t_load = time.monotonic()
        for i in range(changes):
            set_inter(spec, f"{2001 + i}ms")
            t0 = time.monotonic()
            doc = deploy(L, spec)
            deploy_s.append(time.monotonic() - t0)
            reloaded = all(h["services"].get("haproxy") == "reload" for h in doc["hosts"].values())
            if doc["rc"] != 0 or not reloaded:
                bad.append(f"change {i + 1}: rc {doc['rc']}, hosts {doc['hosts']}")
        time.sleep(2)
        load_s = time.monotonic() - t_load + 2
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        stop.set()
        poller.join(timeout=10)
    res = parse_wrk(out)
    after = {lb: len(workers(L, lb)) for lb in L.lbs}
    t0 = time.monotonic()
    while any(len(workers(L, lb)) > 1 for lb in L.lbs) and time.monotonic() - t0 < 30:
        time.sleep(0.5)
    drained_s = time.monotonic() - t0
    left = {lb: len(workers(L, lb)) for lb in L.lbs}
    return {
        "wrk": res,
        "changes": changes,
        "bad": bad,
        "deploy": spread(deploy_s),
        "load_s": load_s,
        "holders": seen,
        "masters_kept": masters == {lb: master_pid(L, lb) for lb in L.lbs},
        "workers_after": after,
        "workers_left": left,
        "drained_s": drained_s,
    }


# ------------------------------------------------------------------------------------ report


def table(results: list[dict[str, Any]], rl: dict[str, Any] | None) -> str:
    lines = [
        "| path | direct req/s | through VIP req/s | VIP / direct (target ≥ 0.8) | "
        "p50 direct / VIP | p99 direct / VIP | failed | CPU wrk / backend (direct runs) | "
        "CPU HAProxy / wrk / backend (VIP runs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        d, v = r["runs"]["direct"], r["runs"]["vip"]

        def med(xs: list[Run], f: Any) -> float:
            return spread([f(x) for x in xs]).median

        ratio = r["ratio"]
        lines.append(
            f"| {r['name']} | {med(d, lambda x: x.wrk.rps):.0f} "
            f"| {med(v, lambda x: x.wrk.rps):.0f} "
            f"| {ratio.fmt(2)} {verdict(ratio.median >= TARGET_RATIO)} "
            f"| {med(d, lambda x: x.wrk.p50_ms):.1f} / {med(v, lambda x: x.wrk.p50_ms):.1f} ms "
            f"| {med(d, lambda x: x.wrk.p99_ms):.1f} / {med(v, lambda x: x.wrk.p99_ms):.1f} ms "
            f"| {sum(x.wrk.failed for x in d + v)} "
            f"| {med(d, lambda x: x.cpu_wrk):.0f} % / {med(d, lambda x: x.cpu_backend):.0f} % "
            f"| {med(v, lambda x: x.cpu_haproxy):.0f} % / {med(v, lambda x: x.cpu_wrk):.0f} % / "
            f"{med(v, lambda x: x.cpu_backend):.0f} % |"
        )
    if rl is None:
        return "\n".join(lines)
    w: WrkResult = rl["wrk"]
    moves = len(rl["holders"]) - 1
    drained = all(n == 1 for n in rl["workers_left"].values())
    lines += [
        "",
        "| reload under load | value | target |",
        "|---|---:|---|",
        f"| config changes deployed (each an HAProxy reload on both LBs) | {rl['changes']} "
        f"({len(rl['bad'])} not as expected) | {rl['changes']} |",
        f"| `halb deploy` per change | {rl['deploy'].fmt(2, ' s')} | |",
        f"| requests during the run | {w.requests} in {rl['load_s']:.0f} s "
        f"({w.rps:.0f}/s, p50 {w.p50_ms:.1f} ms, p99 {w.p99_ms:.1f} ms) | |",
        f"| failed requests (socket errors + non-2xx) | {w.failed} "
        f"(socket errors: {w.errors}; non-2xx: {w.non_2xx}) | 0: {verdict(w.failed == 0)} |",
        f"| VIP holder changes (polled every 0.5 s) | {moves} "
        f"(holders {rl['holders'][0][0]}/{rl['holders'][0][1]}) | 0: {verdict(moves == 0)} |",
        f"| HAProxy masters kept (reload, not restart) | {rl['masters_kept']} | True: "
        f"{verdict(rl['masters_kept'])} |",
        f"| HAProxy workers per LB when the load stopped | {rl['workers_after']} | |",
        f"| workers per LB {rl['drained_s']:.1f} s later | {rl['workers_left']} | 1 each: "
        f"{verdict(drained)} |",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--changes", type=int, default=50)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    t_start = time.monotonic()
    with lab("dp", lbs=2, masters=2, nodes=2) as L:
        spec = bench_spec(L, "master1", "node1")
        tuned = reuse_time_wait(L)
        start_keepalive_console(L, "node1")
        doc = deploy(L, spec)
        if doc["rc"] != 0:
            sys.exit(f"halb deploy failed: {doc}")
        h_int, h_ext = holders(L)
        print(f"lab {L.name}: VIPs on {h_int}/{h_ext}", file=sys.stderr)
        results = [
            side_by_side(
                L,
                "HTTP :30880 (new connection per request on both paths: `Connection: close`)",
                f"http://{L.address('node1')}:30880/",
                f"http://{L.vip_external}:30880/",
                a.rounds,
                a.seconds,
                a.connections,
                h_ext[0],
                ("-H", "Connection: close"),
            ),
            side_by_side(
                L,
                f"HTTP :{KEEPALIVE_PORT} (keep-alive on both paths: a lab console that keeps "
                "connections open)",
                f"http://{L.address('node1')}:{KEEPALIVE_PORT}/",
                f"http://{L.vip_external}:{KEEPALIVE_PORT}/",
                a.rounds,
                a.seconds,
                a.connections,
                h_ext[0],
            ),
            side_by_side(
                L,
                "TLS :6443 `/readyz` (one TLS handshake per request)",
                f"https://{L.address('master1')}:6443/readyz",
                f"https://{L.vip_internal}:6443/readyz",
                a.rounds,
                a.seconds,
                a.connections,
                h_int[0],
            ),
        ]
        rl = reload_under_load(L, spec, a.changes, a.connections) if a.changes else None
    text = (
        header(sys.argv, time.monotonic() - t_start)
        + f" Taskbox: {tuned}.\n\n"
        + table(results, rl)
    )
    if rl and rl["bad"]:
        text += "\n\nNot as expected:\n" + "\n".join(f"- {b}" for b in rl["bad"][:10])
    print(text)
    if not a.no_write:
        write_section(BEGIN, END, text)


if __name__ == "__main__":
    main()
