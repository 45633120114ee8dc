#!/usr/bin/env python3
"""Benchmark: halb's nftables redirect on the KubeSphere guide's six machines (3 masters
that carry the VIP beside the apiserver, 3 nodes, no LB hosts). Needs root; builds its own
lab and always takes it down.

1. The switch. On the VIP holder, a script starts `nft monitor` (line-buffered, each chunk
   stamped as it arrives) and kills HAProxy's master (SIGKILL): the time from the kill to
   each VIP's element leaving halb's set, after which VIP traffic falls through to the
   host's own apiserver / NodePort, the VIP staying where it is. Then a second script
   there starts `nft monitor` again and starts HAProxy the way deploy does (the
   supervisor's start); "back" = from that start to the second VIP's element back in the
   set (keepalived's check, `redirect.sh check`, once a second). N rounds.
2. The data plane. wrk in the taskbox, a new connection per request (`Connection:
   close`), the three paths alternating in each round: VIP:30880 (the redirect, then
   HAProxy, 6 console backends), VIP:9446 (HAProxy's own port: the same path without the
   redirect) and node1:30880 straight (one backend, no HAProxy). The ratio redirect /
   HAProxy's own port is the redirect's cost; redirect / direct is shown too.

    sudo python3 bench/redirect_bench.py              # run, update bench/README.md
    sudo python3 bench/redirect_bench.py --no-write   # run, print only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from labbench import header, lab, parse_wrk, spread, write_section, wrk_command

from halb.lab import Lab
from halb.paths import HAPROXY_PIDFILE, REDIRECT_TABLE
from halb.services import start_argv

BEGIN, END = "<!-- REDIRECT:BEGIN -->", "<!-- REDIRECT:END -->"

# On the holder: `nft monitor` (line-buffered, read by a thread that stamps each chunk as
# it arrives), then ACT; prints ACT's ns and the ns of each line starting with EVENT, once
# two have come (at most WAIT s). A flush of the set shows as one delete per element.
WATCH = """
import json, os, subprocess, sys, threading, time
mon = subprocess.Popen(["stdbuf", "-oL", "nft", "monitor"], stdout=subprocess.PIPE)
got = []
def read():
    while True:
        data = os.read(mon.stdout.fileno(), 65536)
        if not data:
            return
        got.append((time.time_ns(), data.decode()))
threading.Thread(target=read, daemon=True).start()
time.sleep(0.3)
t0 = time.time_ns()
ACT
end = time.monotonic() + WAIT
def seen():
    return [t for t, d in got for line in d.splitlines() if line.startswith("EVENT")]
while len(seen()) < 2 and time.monotonic() < end:
    time.sleep(0.01)
mon.terminate()
print(t0, *seen())
"""
# kill -9 of HAProxy's master; each VIP's element leaving halb's set
SWITCH = (
    WATCH.replace("ACT", f'os.kill(int(open("{HAPROXY_PIDFILE}").readline()), 9)')
    .replace("WAIT", "5")
    .replace("EVENT", f"delete element ip {REDIRECT_TABLE} healthy")
)
# HAProxy started as deploy starts it (argv as JSON in argv[1]); each element coming back
BACK = (
    WATCH.replace(
        "ACT", "subprocess.run(json.loads(sys.argv[1]), check=True, stdout=subprocess.DEVNULL)"
    )
    .replace("WAIT", "15")
    .replace("EVENT", f"add element ip {REDIRECT_TABLE} healthy")
)


def holder(L: Lab) -> str:
    held = L.vip_holders()[L.vip_internal]
    if len(held) != 1:
        sys.exit(f"VIP holders: {held}")
    return held[0]


def deploy(L: Lab) -> None:
    r = L.run("taskbox", ["halb", "deploy", "-c", str(L.spec)], timeout=180)
    if r.returncode != 0:
        sys.exit(f"deploy failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")


def switch_round(L: Lab) -> tuple[float, float, float]:
    """(ms from the kill to the first and to the second VIP out of the redirect, s from
    HAProxy's restart to both back in)."""
    h = holder(L)
    stamps = [int(x) for x in L.run(h, ["python3", "-c", SWITCH], timeout=30).stdout.split()]
    t0, deleted = stamps[0], stamps[1:]
    if len(deleted) != 2:
        sys.exit(f"{h}: nft monitor saw {len(deleted)} of 2 elements leave the set")
    if holder(L) != h:
        sys.exit(f"the VIP left {h} when HAProxy exited there")
    out = L.run(h, ["python3", "-c", BACK, json.dumps(start_argv("haproxy"))], timeout=60)
    back = [int(x) for x in out.stdout.split()]
    if len(back) != 3:
        sys.exit(f"{h}: nft monitor saw {len(back) - 1} of 2 elements come back: {out.stderr}")
    return (
        (min(deleted) - t0) / 1e6,
        (max(deleted) - t0) / 1e6,
        (max(back[1:]) - back[0]) / 1e9,
    )


def wrk_rps(L: Lab, url: str, seconds: int) -> float:
    wrk, env = wrk_command()
    argv = [*wrk, "-t1", "-c16", f"-d{seconds}s", "--timeout", "2s", "--latency"]
    argv += ["-H", "Connection: close", url]
    r = L.run("taskbox", argv, env=env, timeout=seconds + 60)
    res = parse_wrk(r.stdout)
    if res.failed:
        print(f"  {url}: {res.failed} failed ({res.errors})", file=sys.stderr)
    return res.rps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10, help="switch rounds")
    p.add_argument("--dp-rounds", type=int, default=5, help="data-plane rounds")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    started = time.monotonic()
    with lab("rd", lbs=0, masters=3, nodes=3) as L:
        L.run("taskbox", ["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"], check=True)
        deploy(L)
        time.sleep(3)
        switches = []
        for i in range(args.rounds):
            first, last, back = switch_round(L)
            print(f"switch {i + 1}: gone {first:.1f} / {last:.1f} ms, back {back:.2f} s")
            switches.append((first, last, back))
        paths = {
            "redirect": f"http://{L.vip_external}:30880/",
            "haproxy": f"http://{L.vip_external}:9446/",
            "direct": f"http://{L.address('node1')}:30880/",
        }
        rps: dict[str, list[float]] = {k: [] for k in paths}
        for i in range(args.dp_rounds):
            for k, url in paths.items():
                rps[k].append(wrk_rps(L, url, args.seconds))
            print(f"data plane {i + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rps.items()))
    text = report(switches, rps, args, time.monotonic() - started)
    print(text)
    if not args.no_write:
        write_section(BEGIN, END, text)


def report(
    switches: list[tuple[float, float, float]],
    rps: dict[str, list[float]],
    args: argparse.Namespace,
    wall: float,
) -> str:
    first = [s[0] for s in switches]
    gone = [s[1] for s in switches]
    back = [s[2] for s in switches]
    red_hap = [r / h for r, h in zip(rps["redirect"], rps["haproxy"], strict=True)]
    red_dir = [r / d for r, d in zip(rps["redirect"], rps["direct"], strict=True)]
    lines = [
        header(sys.argv, wall),
        "",
        "| what | rounds | median | min | max |",
        "|---|---:|---:|---:|---:|",
        f"| kill -9 of HAProxy on the holder → first VIP out of the redirect (ms, nft "
        f"monitor on the host) | {len(first)} | {statistics.median(first):.1f} | "
        f"{min(first):.1f} | {max(first):.1f} |",
        f"| kill -9 of HAProxy on the holder → both VIPs out (ms) | {len(gone)} | "
        f"{statistics.median(gone):.1f} | {min(gone):.1f} | {max(gone):.1f} |",
        f"| HAProxy started again → redirect back (s; keepalived's 1 s check) | {len(back)} | "
        f"{statistics.median(back):.2f} | {min(back):.2f} | {max(back):.2f} |",
    ]
    for k in ("redirect", "haproxy", "direct"):
        s = spread(rps[k])
        lines.append(
            f"| {k} req/s (new connection per request) | {len(rps[k])} | {s.median:.0f} | "
            f"{s.low:.0f} | {s.high:.0f} |"
        )
    a, b = spread(red_hap), spread(red_dir)
    lines.append(
        f"| ratio redirect / HAProxy's own port (the redirect's cost) | {len(red_hap)} | "
        f"{a.median:.2f} | {a.low:.2f} | {a.high:.2f} |"
    )
    lines.append(
        f"| ratio redirect / direct to node1 | {len(red_dir)} | {b.median:.2f} | "
        f"{b.low:.2f} | {b.high:.2f} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
