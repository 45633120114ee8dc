#!/usr/bin/env python3
"""Outage per fault and profile, and the second outage when the old holder returns.

Needs root. Builds its own lab (2 LBs, 2 masters, 2 nodes), and for each variant (profile
and advert interval) deploys from the taskbox, then runs rounds of each fault on the
holder of both VIPs while bench/loadclient.py loads both VIPs from the taskbox:

  link      `ip link set eth0 down` on the holder, up again after --down seconds
  graceful  SIGTERM to keepalived (a priority-0 advert), started again after --down s
  kill      SIGKILL to keepalived (main and children), started again after --down s
  haproxy   SIGKILL to HAProxy (master and workers), started again after --down s
  drain     `halb drain` then `halb undrain` of the holder

and reports, per round, the client-visible outage (longest gap between two successful
answers, per frontend, around the fault), failed requests, and the same for the
failback (the old holder taking the VIPs back): from the repair, or from the end of the
first outage if that ends later, to half a second after the old holder holds both VIPs
again. `failback_after` is the time from the repair to then. Results: JSON in
bench/results/ and a markdown table on stdout.

    sudo python3 bench/failback.py --rounds 3
    sudo python3 bench/failback.py --variants fast:0.02 --faults link --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from halb import lab as labmod
from halb.facts.ipaddr import parse_ip_addr
from halb.lab import Lab
from halb.services import SUPERVISED, start_argv
from halb.spec.profiles import PROFILES

HERE = Path(__file__).resolve().parent


def holder(lab: Lab) -> str | None:
    held = []
    for lb in lab.lbs:
        addrs = {a.address for a in parse_ip_addr(lab.run(lb, ["ip", "-o", "addr"]).stdout)}
        if lab.vip_internal in addrs and lab.vip_external in addrs:
            held.append(lb)
    return held[0] if len(held) == 1 else None


def wait_holder(lab: Lab, want: str, limit: float) -> float:
    t0 = time.time()
    while time.time() - t0 < limit:
        if holder(lab) == want:
            return time.time()
        time.sleep(0.2)
    raise RuntimeError(f"{want} did not get both VIPs within {limit} s")


def deploy(lab: Lab, profile: str, advert: float | None) -> None:
    data = yaml.safe_load(lab.spec.read_text())
    data["vrrp"] = {"profile": profile, **({"advert_int": advert} if advert else {})}
    lab.spec.write_text(yaml.safe_dump(data, sort_keys=False))
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=180)
    if r.returncode != 0:
        raise RuntimeError(f"deploy failed: {r.stderr[-1500:]}")


class Load:
    def __init__(self, lab: Lab, timeout: float) -> None:
        self.stop = lab.dir / "fb.stop"
        self.stop.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [*lab.enter_argv("taskbox"), "python3", str(HERE / "loadclient.py"),
             lab.vip_internal, lab.vip_external, str(self.stop), "--seconds", "120",
             "--threads", "8", "--timeout", str(timeout), "--pause", "0.002",
             "--min-gap", "0.02"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)

    def result(self) -> dict[str, Any]:
        time.sleep(0.5)
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=60)
        return dict(json.loads(out))


def window(
    res: dict[str, Any], start: float, end: float, *, after_outage: bool = False
) -> dict[str, Any]:
    """Longest gap per frontend and failures whose time falls in [start, end] (wall);
    after_outage: from the end of a gap still open at START, if later."""
    t0 = res["started"]
    lo, hi = start - t0, end - t0
    if after_outage:
        for _fe, s, length in res["gaps"]:
            if s <= lo <= s + length:
                lo = s + length
    gap = {"apiserver": 0.0, "console": 0.0}
    for fe, s, length in res["gaps"]:
        if s + length >= lo and s <= hi:
            gap[fe] = max(gap[fe], length)
    failed = [f for f in res["failed"] if lo <= f["t"] <= hi]
    return {"gap": gap, "failed": len(failed), "errors": sorted({f["error"] for f in failed})}


KILLS = {
    "kill": "kill -KILL $(cat /run/keepalived.pid /run/keepalived_vrrp.pid "
    "/run/keepalived_checkers.pid)",
    "haproxy": "p=$(cat /run/haproxy.pid); kill -KILL $(cat /proc/$p/task/$p/children) $p",
}


def one_round(
    lab: Lab, fault: str, down: float, timeout: float, delay: float, grace: float = 0.0
) -> dict[str, Any]:
    old = holder(lab)
    if old is None:
        raise RuntimeError("no single holder before the round")
    other = next(lb for lb in lab.lbs if lb != old)
    load = Load(lab, timeout)
    t_fault = time.time()
    if fault == "link":
        lab.run(old, ["ip", "link", "set", "eth0", "down"], check=True)
        time.sleep(down)
        t_back = time.time()
        lab.run(old, ["ip", "link", "set", "eth0", "up"], check=True)
    elif fault == "graceful":
        lab.run(old, ["sh", "-c", "kill -TERM $(cat /run/keepalived.pid)"], check=True)
        time.sleep(down)
        t_back = time.time()
        start = '"$@" </dev/null >/var/log/halb/start-keepalived.log 2>&1'
        lab.run(old, ["sh", "-c", start, "sh", *SUPERVISED["keepalived"].start], check=True)
    elif fault in KILLS:
        lab.run(old, ["sh", "-c", KILLS[fault]], check=True)
        time.sleep(down)
        t_back = time.time()
        lab.run(old, start_argv("haproxy" if fault == "haproxy" else "keepalived"), check=True)
    else:
        r = lab.run(
            "taskbox", ["halb", "drain", old, "-c", str(lab.spec), "--timeout", "90"], timeout=150
        )
        if r.returncode:
            raise RuntimeError(r.stderr)
        t_back = time.time()
        r = lab.run(
            "taskbox", ["halb", "undrain", old, "-c", str(lab.spec), "--timeout", "90"], timeout=150
        )
        if r.returncode:
            raise RuntimeError(r.stderr)
    t_home = wait_holder(lab, old, 30 + delay)
    time.sleep(1.0)
    res = load.result()
    time.sleep(grace)  # the failback bridge comes down before the next round
    return {
        "fault": fault,
        "old": old,
        "new": other,
        "outage": window(res, t_fault - 0.05, t_back),
        "failback": window(res, t_back, t_home + 0.5, after_outage=True),
        "failback_after": round(t_home - t_back, 2),
        "ok": res["ok"],
    }


def summarise(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| variant | fault | rounds | outage p50 / max (s) | failed | failback outage max (s) "
        "| failback failed | back after p50 / max (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["variant"], r["fault"]) for r in rows}, key=str)
    for variant, fault in keys:
        rs = [r for r in rows if (r["variant"], r["fault"]) == (variant, fault)]
        gaps = [max(r["outage"]["gap"].values()) for r in rs]
        back = [max(r["failback"]["gap"].values()) for r in rs]
        after = [r["failback_after"] for r in rs]
        out.append(
            f"| {variant} | {fault} | {len(rs)} | {statistics.median(gaps):.3f} / "
            f"{max(gaps):.3f} | {sum(r['outage']['failed'] for r in rs)} | {max(back):.3f} | "
            f"{sum(r['failback']['failed'] for r in rs)} | "
            f"{statistics.median(after):.1f} / {max(after):.1f} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="default,fast:0.05,fast:0.03,fast:0.02")
    ap.add_argument("--faults", default="link,graceful,kill,haproxy,drain")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--down", type=float, default=3.0, help="seconds a fault lasts")
    ap.add_argument("--timeout", type=float, default=0.1, help="client timeout per request")
    args = ap.parse_args()
    # a plain kill ends the run through the cleanup below, like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds a lab)")
    name = labmod.pick_name("fb")
    d = Path(tempfile.mkdtemp(prefix=f"halb-failback-{name}-")) / "lab"
    rows: list[dict[str, Any]] = []
    try:
        lab = labmod.up(name, d, lbs=2, masters=2, nodes=2)
        print(f"load: {os.getloadavg()}", flush=True)
        for variant in args.variants.split(","):
            profile, _, adv = variant.partition(":")
            deploy(lab, profile, float(adv) if adv else None)
            delay = 3.0 if profile == "fast" else 0.0
            grace = PROFILES[profile].failback_grace
            time.sleep(2 + delay)
            for fault in args.faults.split(","):
                for i in range(args.rounds):
                    row = one_round(lab, fault, args.down, args.timeout, delay, grace)
                    row.update(variant=variant, round=i + 1)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    time.sleep(1.0)
    finally:
        labmod.down(name, d)
        shutil.rmtree(d.parent, ignore_errors=True)
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (results / f"failback-{stamp}.json").write_text(json.dumps(rows, indent=2) + "\n")
        print(f"load: {os.getloadavg()}", flush=True)
    print("\n".join(summarise(rows)))


if __name__ == "__main__":
    main()
