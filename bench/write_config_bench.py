#!/usr/bin/env python3
"""Benchmark: how long `write_config` takes on an installer config, up to halb's limits.

The round-trip YAML parser (ruamel.yaml, pure Python) is what costs; the limits in
halb/installers/limits.py (file size, nodes after alias expansion, nesting) bound it. Each
case runs `write_config(..., dry_run=True)` on a file in a temp folder, best of 3. Files
beyond a limit are refused before the parser sees them; that time is measured too.

    python3 bench/write_config_bench.py            # run and write bench/write_config.md
    python3 bench/write_config_bench.py --no-write # run and print only
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from halb.errors import InputError
from halb.installers import LBSettings, write_config
from halb.installers.limits import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_NODES

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "installers"
OUT = HERE / "write_config.md"
SETTINGS = LBSettings("192.168.0.253", 6443, "lb.kubesphere.local", ("192.168.0.254",))


def keys(n: int) -> bytes:
    return b"".join(b"k%d: %d\n" % (i, i) for i in range(n))


def bomb() -> bytes:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        p, c = chr(96 + i), chr(97 + i)
        lines.append(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]")
    return "\n".join(lines).encode() + b"\n"


CASES: list[tuple[str, str, Callable[[], bytes]]] = [
    (
        "KubeSphere common.yaml (fixture)",
        "kubesphere",
        lambda: FIXTURES.joinpath("kubesphere-common.yaml").read_bytes(),
    ),
    (
        "KubeKey cluster config (fixture)",
        "kubekey",
        lambda: FIXTURES.joinpath("kubekey-cluster.yaml").read_bytes(),
    ),
    ("250 keys", "kubespray", lambda: keys(250)),
    ("1000 keys", "kubespray", lambda: keys(1000)),
    (
        f"{MAX_NODES // 2 - 10} keys (just under the node limit)",
        "kubespray",
        lambda: keys(MAX_NODES // 2 - 10),
    ),
    (
        "a list just under the node limit",
        "kubespray",
        lambda: b"l: [" + b",".join(b"%d" % i for i in range(MAX_NODES - 10)) + b"]\n",
    ),
    (
        "comments up to the size limit",
        "kubespray",
        lambda: b"a: 1\n" + b"# some comment text\n" * ((MAX_CONFIG_BYTES - 10) // 20),
    ),
    (
        "one value up to the size limit",
        "kubespray",
        lambda: b"a: " + b"x" * (MAX_CONFIG_BYTES - 10) + b"\n",
    ),
    ("refused: over the node limit", "kubespray", lambda: keys(MAX_NODES)),
    ("refused: over the size limit", "kubespray", lambda: b"#" * (MAX_CONFIG_BYTES + 1)),
    ("refused: alias bomb (10^10 nodes)", "kubespray", bomb),
    ("refused: 10 000 nested lists", "kubespray", lambda: b"a: " + b"[" * 10_000 + b"]" * 10_000),
    (
        f"refused: {MAX_DEPTH + 1} nested mappings",
        "kubespray",
        lambda: b"".join(b"  " * i + b"k:\n" for i in range(MAX_DEPTH + 1)),
    ),
]


def run_case(kind: str, data: bytes, folder: Path) -> tuple[float, str]:
    path = folder / "config.yaml"
    path.write_bytes(data)
    best = float("inf")
    outcome = ""
    for _ in range(3):
        start = time.perf_counter()
        try:
            write_config(kind, path, SETTINGS, dry_run=True)
            outcome = "edited"
        except InputError as e:
            outcome = "refused: " + str(e).split(": ", 1)[1][:70]
        best = min(best, time.perf_counter() - start)
    return best, outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, make in CASES:
            data = make()
            seconds, outcome = run_case(kind, data, Path(tmp))
            rows.append(f"| {name} | {len(data):,} | {seconds:.3f} s | {outcome} |")
            print(rows[-1], flush=True)
    text = "\n".join(
        [
            "# write-config: time per installer config, up to halb's limits",
            "",
            f"Run: `python3 bench/write_config_bench.py` on {date.today()}, CPython "
            f"{platform.python_version()}, {os.cpu_count()} CPU(s); best of 3, dry run.",
            f"Limits: {MAX_CONFIG_BYTES:,} bytes, {MAX_NODES:,} nodes after alias expansion, "
            f"{MAX_DEPTH} levels of nesting.",
            "",
            "| file | bytes | time | outcome |",
            "|---|---:|---:|---|",
            *rows,
            "",
        ]
    )
    if not args.no_write:
        OUT.write_text(text)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
