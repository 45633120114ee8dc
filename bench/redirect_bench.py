#!/usr/bin/env python3
"""Benchmark: halb's nftables redirect on the KubeSphere guide's six machines (3 masters
that carry the VIP beside the apiserver, 3 nodes, no LB hosts). Needs root; builds its own
lab and always takes it down.

1. The switch. On the VIP holder, one shell script kills HAProxy's master (SIGKILL) and
   polls halb's set (`nft list set`, a few ms per poll, on the host itself) until no VIP
   is left in it: the time from the kill to the redirect gone, so VIP traffic falls
   through to the host's own apiserver / NodePort. Then `halb deploy` starts HAProxy again
   and the time from its end until both VIPs are back in the set is taken (keepalived
   leaves FAULT after chk_haproxy's `rise 2`, 1 s apart). N rounds.
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
import statistics
import sys
import time

from labbench import header, lab, parse_wrk, spread, write_section, wrk_command

from halb.lab import Lab
from halb.paths import HAPROXY_PIDFILE, REDIRECT_TABLE
from halb.redirect import STATUS_ARGV, parse_status

BEGIN, END = "<!-- REDIRECT:BEGIN -->", "<!-- REDIRECT:END -->"

# On the holder: kill HAProxy's master, then poll the set until it is empty (at most ~5 s);
# prints "microseconds polls".
SWITCH = f"""
pid=$(head -n 1 {HAPROXY_PIDFILE})
t0=$(date +%s%N)
kill -9 "$pid"
n=0
while nft list set ip {REDIRECT_TABLE} healthy | grep -q 'elements'; do
    n=$((n + 1)); [ "$n" -gt 2000 ] && break
done
t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000 )) $n
"""


def holder(L: Lab) -> str:
    held = L.vip_holders()[L.vip_internal]
    if len(held) != 1:
        sys.exit(f"VIP holders: {held}")
    return held[0]


def deploy(L: Lab) -> None:
    r = L.run("taskbox", ["halb", "deploy", "-c", str(L.spec)], timeout=180)
    if r.returncode != 0:
        sys.exit(f"deploy failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")


def switch_round(L: Lab) -> tuple[float, int, float]:
    """(ms from kill to the redirect gone, polls, s from the restart to it back)."""
    h = holder(L)
    us, polls = L.run(h, ["sh", "-c", SWITCH], timeout=30).stdout.split()
    deploy(L)  # starts HAProxy again on h
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        if len(parse_status(L.run(h, STATUS_ARGV).stdout).vips) == 2:
            break
        time.sleep(0.05)
    back = time.monotonic() - t0
    time.sleep(2)  # the VIP comes back to its first holder (preempt)
    return int(us) / 1000, int(polls), back


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
            ms, polls, back = switch_round(L)
            print(f"switch {i + 1}: gone {ms:.1f} ms ({polls} polls), back {back:.2f} s")
            switches.append((ms, polls, back))
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
    switches: list[tuple[float, int, float]],
    rps: dict[str, list[float]],
    args: argparse.Namespace,
    wall: float,
) -> str:
    gone = [s[0] for s in switches]
    back = [s[2] for s in switches]
    polls = [s[1] for s in switches]
    red_hap = [r / h for r, h in zip(rps["redirect"], rps["haproxy"], strict=True)]
    red_dir = [r / d for r, d in zip(rps["redirect"], rps["direct"], strict=True)]
    lines = [
        header(sys.argv, wall),
        "",
        "| what | rounds | median | min | max |",
        "|---|---:|---:|---:|---:|",
        f"| kill -9 of HAProxy on the holder → redirect gone (ms, polled on the host, "
        f"{statistics.median(polls):.0f} polls median) | {len(gone)} | "
        f"{statistics.median(gone):.1f} | {min(gone):.1f} | {max(gone):.1f} |",
        f"| `halb deploy` restarted HAProxy → redirect back (s) | {len(back)} | "
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
