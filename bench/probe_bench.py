#!/usr/bin/env python3
"""Benchmark: `halb probe` over 500 backends, some answering, some black-holed.

Needs root. Everything happens inside a private network namespace that this script creates
and deletes (`halb-bench-<pid>`); the root namespace gets no address and no route. Inside:

  * 127.0.0.0/24  TLS "apiservers" on 6443 (most answer /readyz 200, some 500, some 401)
  * 127.0.2.0/24  HTTP "consoles" on 30880
  * 127.0.3.0/24  nothing listening (connection refused)
  * 127.0.1.0/24  black-holed: an iptables DROP in the namespace, so the SYN gets no answer

Each scenario probes 500 backends with halb.probe.run_probes and records the wall time as a
ratio of the per-probe timeout. All scenarios run in one invocation, side by side, and the
table is written into bench/README.md between the RESULTS markers.

    sudo python3 bench/probe_bench.py            # run and update bench/README.md
    sudo python3 bench/probe_bench.py --no-write # run and print only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from halb.probe import ProbeTarget, Via, probe

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BEGIN, END = "<!-- RESULTS:BEGIN -->", "<!-- RESULTS:END -->"
N_BACKENDS = 500
POOL = 250  # listeners per kind inside the namespace (addresses .1 .. .250)

# (black-holed fraction, concurrency, per-probe timeout in s)
SCENARIOS = [
    (0.0, 512, 2.0),
    (0.1, 512, 2.0),
    (0.5, 512, 2.0),
    (1.0, 512, 2.0),
    (0.5, 512, 1.0),
    (0.1, 256, 2.0),
    (0.5, 256, 2.0),
    (1.0, 256, 2.0),
]


# --------------------------------------------------------------------------- in the namespace


def _readyz_code(i: int) -> int:
    return 500 if i % 10 == 3 else 401 if i % 10 == 7 else 200


async def _serve(certdir: Path) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certdir / "cert.pem", certdir / "key.pem")

    def handler(code: int):  # type: ignore[no-untyped-def]
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await r.readuntil(b"\r\n\r\n")
                w.write(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok".encode())
                await w.drain()
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                w.close()

        return handle

    servers = []
    for i in range(1, POOL + 1):
        servers.append(
            await asyncio.start_server(
                handler(_readyz_code(i)), f"127.0.0.{i}", 6443, ssl=ctx, backlog=64
            )
        )
        servers.append(await asyncio.start_server(handler(200), f"127.0.2.{i}", 30880))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def _targets(black_fraction: float) -> list[ProbeTarget]:
    black = round(N_BACKENDS * black_fraction)
    rest = N_BACKENDS - black
    tls = min(POOL, rest // 2)
    http = min(POOL, (rest - tls) // 2)
    refused = rest - tls - http
    t: list[ProbeTarget] = []
    for i in range(black):
        t.append(
            ProbeTarget(
                "bench", "readyz", Via.DIRECT, f"b{i}", f"127.0.1.{i % 250 + 1}", 6443 + i // 250
            )
        )
    for i in range(tls):
        t.append(ProbeTarget("bench", "readyz", Via.DIRECT, f"t{i}", f"127.0.0.{i + 1}", 6443))
    for i in range(http):
        t.append(ProbeTarget("bench", "http", Via.DIRECT, f"h{i}", f"127.0.2.{i + 1}", 30880))
    for i in range(refused):
        t.append(
            ProbeTarget(
                "bench", "readyz", Via.DIRECT, f"r{i}", f"127.0.3.{i % 250 + 1}", 6443 + i // 250
            )
        )
    # Interleave so black-holed targets are spread over the run, as in a real inventory.
    t.sort(key=lambda x: zlib.crc32(x.name.encode()))
    return t


def _run(black: float, concurrency: int, timeout: float) -> dict[str, object]:
    targets = _targets(black)
    results, elapsed_ms = probe(targets, timeout=timeout, concurrency=concurrency)
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    answered = sorted(r.latency_ms for r in results if r.connected)
    p50 = answered[len(answered) // 2] if answered else None
    p99 = answered[min(len(answered) - 1, int(len(answered) * 0.99))] if answered else None
    return {
        "backends": len(results),
        "black_holed": round(N_BACKENDS * black),
        "concurrency": concurrency,
        "timeout_s": timeout,
        "elapsed_ms": elapsed_ms,
        "ratio": round(elapsed_ms / 1000.0 / timeout, 3),
        "counts": counts,
        "p50_connected_ms": p50,
        "p99_connected_ms": p99,
    }


# --------------------------------------------------------------------------- orchestration


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _make_cert(d: Path) -> None:
    _sh(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=bench-apiserver",
        "-keyout",
        str(d / "key.pem"),
        "-out",
        str(d / "cert.pem"),
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true", help="do not update bench/README.md")
    ap.add_argument("_mode", nargs="?", default="", help=argparse.SUPPRESS)
    ap.add_argument("_args", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._mode == "_serve":
        asyncio.run(_serve(Path(a._args[0])))
        return 0
    if a._mode == "_run":
        rows = [_run(float(b), int(c), float(t)) for b, c, t in json.loads(a._args[0])]
        sys.stdout.write(json.dumps(rows) + "\n")
        return 0
    if os.geteuid() != 0:
        sys.stderr.write("probe_bench: needs root (it creates a network namespace)\n")
        return 2

    ns = f"halb-bench-{os.getpid()}"
    server: subprocess.Popen[str] | None = None
    with tempfile.TemporaryDirectory(prefix="halb-bench-") as tmp:
        try:
            _make_cert(Path(tmp))
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh(
                "ip",
                "netns",
                "exec",
                ns,
                "iptables",
                "-A",
                "INPUT",
                "-d",
                "127.0.1.0/24",
                "-p",
                "tcp",
                "-j",
                "DROP",
            )
            server = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, __file__, "_serve", tmp],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError("bench server did not start")
            plan = json.dumps(SCENARIOS)
            start = time.monotonic()
            out = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, __file__, "_run", plan],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            ).stdout
            total = time.monotonic() - start
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    rows = json.loads(out)
    table = _table(rows, total)
    sys.stdout.write(table + "\n")
    if not a.no_write:
        _write(table)
    return 0 if all(r["ratio"] <= 1.5 for r in rows if r["concurrency"] >= 512) else 1


def _table(rows: list[dict[str, object]], total: float) -> str:
    lines = [
        f"Run: `sudo python3 bench/probe_bench.py` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s), Linux {platform.release()}; all scenarios in one run "
        f"({total:.1f} s).",
        "",
        "| backends | black-holed | concurrency | timeout | wall time | wall / timeout "
        "| ready | not ready | auth off | refused | timeout | p50 / p99 connected |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["counts"]
        assert isinstance(c, dict)
        lines.append(
            f"| {r['backends']} | {r['black_holed']} | {r['concurrency']} | {r['timeout_s']} s "
            f"| {float(r['elapsed_ms']) / 1000:.2f} s | **{r['ratio']}** "  # type: ignore[arg-type]
            f"| {c.get('ready', 0)} | {c.get('not_ready', 0)} | {c.get('auth_required', 0)} "
            f"| {c.get('refused', 0)} | {c.get('timeout', 0)} "
            + (
                f"| {r['p50_connected_ms']:.0f} / {r['p99_connected_ms']:.0f} ms |"
                if r["p50_connected_ms"] is not None
                else "| – |"
            )
        )
    return "\n".join(lines)


def _write(table: str) -> None:
    text = README.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
