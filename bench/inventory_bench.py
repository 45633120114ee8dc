#!/usr/bin/env python3
"""Benchmark: loading an inventory (and validating a spec over it) grows linearly with the
number of hosts.

Generates KubeSphere-shaped inventories of 1k, 10k and 100k hosts (3 masters, the rest
nodes, `[k8s-cluster:children]`, a console frontend over every node), as INI and as YAML,
in a temporary folder, and times `halb.inventory.load_inventory` and `halb.spec.check`
(everything `halb validate` does). Each figure is the CPU time of the best of a few
runs. Pure Python, no root, no network. The table goes into bench/README.md between
the INVENTORY markers.

    python3 bench/inventory_bench.py             # run and update bench/README.md
    python3 bench/inventory_bench.py --no-write  # run and print only
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from halb.inventory import load_inventory
from halb.spec import check

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BEGIN, END = "<!-- INVENTORY:BEGIN -->", "<!-- INVENTORY:END -->"
SIZES = (1_000, 10_000, 100_000)


def address(i: int) -> str:
    return f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}"


def names(n: int) -> list[str]:
    return ["lb1", "lb2", "m1", "m2", "m3"] + [f"n{i}" for i in range(n - 5)]


def ini_text(n: int) -> str:
    hosts = names(n)
    lines = ["[all]", *(f"{h} ip={address(i)}" for i, h in enumerate(hosts))]
    lines += ["[lb]", "lb1", "lb2", "[kube-master]", "m[1:3]", "[etcd]", "m[1:3]"]
    lines += ["[kube-node]", f"n[0:{n - 6}]", "[k8s-cluster:children]", "kube-master"]
    lines += ["kube-node", ""]
    return "\n".join(lines)


def yaml_text(n: int) -> str:
    hosts = names(n)
    doc = {
        "all": {
            "hosts": {h: {"ip": address(i)} for i, h in enumerate(hosts)},
            "children": {
                "lb": {"hosts": dict.fromkeys(hosts[:2])},
                "kube-master": {"hosts": dict.fromkeys(hosts[2:5])},
                "etcd": {"hosts": dict.fromkeys(hosts[2:5])},
                "kube-node": {"hosts": {f"n[0:{n - 6}]": None}},
                "k8s-cluster": {"children": {"kube-master": None, "kube-node": None}},
            },
        }
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=200)


SPEC = """\
cluster: bench
inventory: {inventory}
vips:
  internal: {{address: 10.250.250.250, interface: eth0}}
"""


def best(fn: Callable[[], object], runs: int) -> float:
    """CPU seconds of the best run: the machine is shared, so wall time measures others."""
    times = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def run(runs: int) -> list[tuple[str, int, int, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="halb-inv-bench-") as tmp:
        d = Path(tmp)
        for fmt, make, name in (("INI", ini_text, "hosts.ini"), ("YAML", yaml_text, "hosts.yml")):
            for n in SIZES:
                inv = d / f"{n}-{name}"
                inv.write_text(make(n))
                spec = d / f"{n}-{fmt}.yaml"
                spec.write_text(SPEC.format(inventory=inv.name))
                assert len(load_inventory(inv).hosts) == n
                cluster, findings = check(spec)
                assert cluster is not None, [str(f) for f in findings]
                load = best(lambda inv=inv: load_inventory(inv), runs)
                validate = best(lambda spec=spec: check(spec), runs)
                rows.append((fmt, n, inv.stat().st_size, load, validate))
                print(f"{fmt:4} {n:>7} hosts: load {load:.3f} s, validate {validate:.3f} s")
    return rows


def table(rows: list[tuple[str, int, int, float, float]], runs: int) -> str:
    out = [
        f"Run: `python3 bench/inventory_bench.py` on {time.strftime('%Y-%m-%d')}, CPython "
        f"{platform.python_version()}, {os.cpu_count()} CPU(s); CPU time, best of {runs} "
        "runs (the machine is shared with other work, so wall time would measure that).",
        "",
        "| format | hosts | file size | load | µs / host | validate (load + checks) | µs / host |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, n, size, load, validate in rows:
        out.append(
            f"| {fmt} | {n:,} | {size / 1e6:.2f} MB | {load:.3f} s | {load / n * 1e6:.0f} "
            f"| {validate:.3f} s | {validate / n * 1e6:.0f} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    text = table(run(args.runs), args.runs)
    print(text)
    if not args.no_write:
        readme = README.read_text()
        head, _, rest = readme.partition(BEGIN)
        _, _, tail = rest.partition(END)
        README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
