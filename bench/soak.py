#!/usr/bin/env python3
"""Soak: the `fast` profile under client load with a CPU hog on every LB host; count VRRP
transitions. Target: zero.

Needs root. Builds its own lab (unique name), deploys the fast profile from the taskbox,
then for --minutes runs bench/loadclient.py in the taskbox and one bounded busy loop
(`timeout` + a shell `while :`) inside each LB host's namespaces. Transitions are the
lines keepalived's notify script adds to /var/log/halb/notify.log on each LB host during
the soak; VIP holders are read before and after. The lab, the hogs and the client are
stopped at the end, also on failure or Ctrl-C.

    sudo python3 bench/soak.py                  # 10 minutes, result in bench/results/
    sudo python3 bench/soak.py --minutes 1      # a short look
    sudo python3 bench/soak.py --advert 0.02    # another advert interval
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from halb import lab as labmod
from halb.lab import Lab

HERE = Path(__file__).resolve().parent
NOTIFY_LOG = "/var/log/halb/notify.log"


def notify_lines(lab: Lab, lb: str) -> list[str]:
    r = lab.run(lb, ["sh", "-c", f"cat {NOTIFY_LOG} 2>/dev/null || true"])
    return r.stdout.splitlines()


def deploy_fast(lab: Lab, advert: float | None) -> None:
    data = yaml.safe_load(lab.spec.read_text())
    data["vrrp"] = {"profile": "fast", **({"advert_int": advert} if advert else {})}
    lab.spec.write_text(yaml.safe_dump(data, sort_keys=False))
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=180)
    if r.returncode != 0:
        raise SystemExit(f"deploy failed: {r.stderr[-2000:]}")


def soak(lab: Lab, seconds: float, advert: float | None) -> dict[str, Any]:
    deploy_fast(lab, advert)
    time.sleep(5)  # let the preempt delay and the first checks settle
    before = lab.vip_holders()
    marks = {lb: len(notify_lines(lab, lb)) for lb in lab.lbs}
    stop = lab.dir / "soak.stop"
    stop.unlink(missing_ok=True)
    client = subprocess.Popen(
        [*lab.enter_argv("taskbox"), "python3", str(HERE / "loadclient.py"),
         lab.vip_internal, lab.vip_external, str(stop), "--seconds", str(seconds + 30),
         "--timeout", "0.5", "--pause", "0.01"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    busy = ["timeout", str(int(seconds) + 5), "sh", "-c", "while :; do :; done"]
    hogs = [
        subprocess.Popen([*lab.enter_argv(lb), *busy], start_new_session=True) for lb in lab.lbs
    ]
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
    finally:
        for h in hogs:
            if h.poll() is None:
                os.killpg(h.pid, signal.SIGTERM)
            h.wait(timeout=10)
        stop.touch()
    out, _ = client.communicate(timeout=60)
    load = json.loads(out)
    after = lab.vip_holders()
    transitions = {lb: notify_lines(lab, lb)[marks[lb] :] for lb in lab.lbs}
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "holders_before": before,
        "holders_after": after,
        "transitions": transitions,
        "transition_count": sum(len(v) for v in transitions.values()),
        "requests_ok": load["ok"],
        "requests_failed": len(load["failed"]),
        "failures": load["failed"][:20],
        "longest_gap": load["gap"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--advert", type=float, help="advert_int instead of the profile's")
    args = ap.parse_args()
    # a plain kill ends the run through the cleanup below, like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        raise SystemExit("the soak needs root (it builds a lab)")
    name = labmod.pick_name("sk")
    d = Path(tempfile.mkdtemp(prefix=f"halb-soak-{name}-")) / "lab"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        lab = labmod.up(name, d, lbs=2, masters=2, nodes=2)
        result = soak(lab, args.minutes * 60, args.advert)
    finally:
        labmod.down(name, d)
        shutil.rmtree(d.parent, ignore_errors=True)
    result.update(
        advert_int=args.advert or "profile",
        started=started,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        kernel=platform.release(),
    )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"soak-{started}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    print(f"written: {path}")
    sys.exit(0 if result["transition_count"] == 0 else 1)


if __name__ == "__main__":
    main()
