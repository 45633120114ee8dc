"""Client load through the VIPs, run inside the lab's taskbox (stdlib only).

    python3 loadclient.py VIP_INT VIP_EXT STOPFILE [--seconds S] [--threads N]
        [--timeout T] [--pause P]

Each thread opens a new connection per request (TLS + GET /readyz on 6443, HTTP GET / on
30880, alternately), with its own short timeout, so a dead path costs one short timeout,
not a SYN retransmit. It stops when STOPFILE exists or after S seconds and prints JSON:
ok and failed counts, each failure with its time, per frontend the longest gap between
two successful answers (the outage a client saw), and every gap over --min-gap with its
start. Times are seconds since "started" (wall clock, comparable with the caller's).
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import threading
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vip_int")
    ap.add_argument("vip_ext")
    ap.add_argument("stop", type=Path)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--pause", type=float, default=0.005)
    ap.add_argument("--min-gap", type=float, default=0.03, help="list gaps longer than this")
    a = ap.parse_args()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    lock = threading.Lock()
    ok = {"apiserver": 0, "console": 0}
    last_ok: dict[str, float] = {}
    gap = {"apiserver": 0.0, "console": 0.0}
    gap_at = {"apiserver": 0.0, "console": 0.0}
    gaps: list[tuple[str, float, float]] = []  # (frontend, start, length) over --min-gap
    failed: list[dict[str, object]] = []
    t0 = time.time()
    deadline = time.monotonic() + a.seconds

    def one(i: int) -> None:
        if i % 2:
            fe = "apiserver"
            c: http.client.HTTPConnection = http.client.HTTPSConnection(
                a.vip_int, 6443, timeout=a.timeout, context=ctx
            )
            path = "/readyz"
        else:
            fe = "console"
            c = http.client.HTTPConnection(a.vip_ext, 30880, timeout=a.timeout)
            path = "/"
        start = time.time()
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            good, why = r.status == 200, f"status {r.status}"
        except Exception as e:  # every failure is data here
            good, why = False, type(e).__name__ + ": " + str(e)[:80]
        finally:
            c.close()
        end = time.time()
        with lock:
            if good:
                ok[fe] += 1
                prev = last_ok.get(fe)
                if prev is not None and end - prev > gap[fe]:
                    gap[fe], gap_at[fe] = end - prev, prev - t0
                if prev is not None and end - prev > a.min_gap:
                    gaps.append((fe, round(prev - t0, 4), round(end - prev, 4)))
                last_ok[fe] = max(end, prev or 0.0)
            else:
                failed.append({"t": round(start - t0, 4), "frontend": fe, "error": why})

    def loop(k: int) -> None:
        i = k
        while not a.stop.exists() and time.monotonic() < deadline:
            one(i)
            i += 1
            time.sleep(a.pause)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(
        json.dumps(
            {
                "started": t0,
                "seconds": round(time.time() - t0, 3),
                "ok": ok,
                "failed": failed,
                "gap": {k: round(v, 4) for k, v in gap.items()},
                "gap_at": {k: round(v, 3) for k, v in gap_at.items()},
                "gaps": sorted(gaps, key=lambda g: g[1]),
            }
        )
    )


if __name__ == "__main__":
    main()
