#!/usr/bin/env python3
"""Benchmark: wall time of `halb deploy` for 2 and 20 LB hosts against `ansible-playbook`
running the playbook from `halb export ansible` on the same hosts for the same change.
Needs root; builds its own lab (2 LBs, 2 masters, 20 nodes) and always takes it down.

2 LB hosts: the lab's lb1 (a non-root login becoming root with sudo and a password) and
lb2 (root by password). 20 LB hosts: node1..node20 of the same lab, with a spec of their
own (other VIPs, the console frontend on 30881). Per size, from the taskbox:

  first      fresh hosts (services stopped, files removed) -> everything deployed
  no-change  the same spec again
  one-file   the health-check interval changed: haproxy.cfg only, HAProxy reloaded

halb and Ansible alternate within each repeat, each applying its own change from the state
the other left, and the ratio halb / Ansible is taken per repeat. Then halb alone again
with `-o KexAlgorithms=curve25519-sha256` added to the inventory's ansible_ssh_common_args
(OpenSSH 9.2's default key exchange, sntrup761x25519, costs far more CPU per connection,
and 20 handshakes share the 2 cores with everything else). Then a profile of what a
no-change and a one-file `halb deploy` spend their time on, for 2 and 20 hosts:
interpreter and imports, SSH set-up, the report's stages, commands per host.

    sudo python3 bench/deploy_bench.py              # run, update bench/README.md
    sudo python3 bench/deploy_bench.py --no-write   # run, print only
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from labbench import header, lab, spread, verdict, write_section

from halb.lab import Lab

BEGIN, END = "<!-- DEPLOY:BEGIN -->", "<!-- DEPLOY:END -->"
PYTHON = ["-e", "ansible_python_interpreter=/usr/bin/python3"]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# Inside the LB host's private mounts only (see halb.lab.build.HOST_BINDS).
RESET = (
    "for p in /run/keepalived.pid /run/haproxy.pid; do "
    'pid=$(cat "$p" 2>/dev/null) || continue; '
    'grep -qxE "haproxy|keepalived" /proc/"$pid"/comm 2>/dev/null || continue; '
    'kill -TERM "$pid"; i=0; '
    'while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done; '
    "done; "
    "rm -rf /etc/haproxy/haproxy.cfg* /etc/keepalived/keepalived.conf* /etc/keepalived/halb "
    "/etc/sysctl.d/90-halb.conf* /var/lib/halb/backup /run/haproxy.pid /run/keepalived*.pid"
)

# Runs inside the taskbox: a no-change deploy through halb's API with every transport
# command timed, so the report can say where the time goes.
PROFILE = r"""
import json, sys, time
from pathlib import Path
from halb.spec import load_cluster
from halb.render import render_cluster
from halb.deploy import deploy
from halb.transport import for_host
calls = {}
def factory(host):
    t = for_host(host)
    def wrap(fn, what):
        def timed(*a, **k):
            t0 = time.monotonic()
            try:
                return fn(*a, **k)
            finally:
                calls.setdefault(host.name, []).append((what, time.monotonic() - t0))
        return timed
    # the first popen (the remote lock) opens the SSH connection and says the uid; a sudo
    # login adds sudo's check to it
    t.run, t.popen = wrap(t.run, "run"), wrap(t.popen, "popen")
    return t
t0 = time.monotonic()
c = load_cluster(Path(sys.argv[1]))
r = render_cluster(c)
t1 = time.monotonic()
rep = deploy(c, r, transport_for=factory)
print(json.dumps({"ok": rep.ok, "changed": rep.changed, "load_render": t1 - t0,
                  "deploy": rep.seconds, "stages": rep.stages, "calls": calls}))
"""


# ------------------------------------------------------------------------------- helpers


def write_spec(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def specs(L: Lab) -> dict[int, Path]:
    base = yaml.safe_load(L.spec.read_text())
    base["inventory"] = str(L.inventory)
    two = L.dir / "bench2.yaml"
    write_spec(two, base)
    prefix = L.vip_internal.rsplit(".", 1)[0]
    nodes = [f"node{i}" for i in range(1, 21)]
    twenty = {
        **base,
        "cluster": f"{base['cluster']}-20",
        "lb_hosts": nodes,
        "vips": {
            "internal": {**base["vips"]["internal"], "address": f"{prefix}.251"},
            "external": {**base["vips"]["external"], "address": f"{prefix}.252"},
        },
        "frontends": {
            **base["frontends"],
            "console": {**base["frontends"]["console"], "port": 30881},
        },
    }
    p20 = L.dir / "bench20.yaml"
    write_spec(p20, twenty)
    return {2: two, 20: p20}


KEX = "KexAlgorithms=curve25519-sha256"


def kex_specs(L: Lab, paths: dict[int, Path]) -> dict[int, Path]:
    """Copies of the specs whose inventory adds `-o KEX` to ansible_ssh_common_args."""
    inv = L.dir / "hosts-kex.ini"
    text = L.inventory.read_text()
    marker = "ansible_ssh_common_args='"
    if marker not in text:
        sys.exit(f"{L.inventory}: no ansible_ssh_common_args to add {KEX} to")
    inv.write_text(text.replace(marker, f"{marker}-o {KEX} ", 1))
    inv.chmod(0o600)
    out = {}
    for n, spec in paths.items():
        data = yaml.safe_load(spec.read_text())
        data["inventory"] = str(inv)
        out[n] = spec.with_name(f"{spec.stem}-kex.yaml")
        write_spec(out[n], data)
    return out


def lb_hosts(spec: Path) -> list[str]:
    data = yaml.safe_load(spec.read_text())
    return list(data.get("lb_hosts") or ["lb1", "lb2"])


def set_inter(spec: Path, inter: str) -> None:
    data = yaml.safe_load(spec.read_text())
    data["health"] = {**data.get("health", {}), "inter": inter}
    write_spec(spec, data)


def timed(
    L: Lab, argv: list[str], timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    r = L.run("taskbox", argv, timeout=timeout)
    return time.monotonic() - t0, r


NAN = float("nan")
FAILURES: list[str] = []  # printed in the report as misses


def fail(message: str) -> float:
    print(f"FAILED: {message}", file=sys.stderr)
    FAILURES.append(message)
    return NAN


def halb_deploy(L: Lab, spec: Path, expect_change: bool) -> float:
    wall, r = timed(L, ["halb", "deploy", "-c", str(spec), "--json"])
    doc = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    if r.returncode != 0 or doc.get("changed") != expect_change:
        err = r.stderr.strip().splitlines()
        return fail(f"halb deploy {spec.name}: rc {r.returncode}, changed {doc.get('changed')}, "
                    f"expected {expect_change}: {err[-1] if err else ''}")  # fmt: skip
    return wall


def export(L: Lab, spec: Path, dest: Path) -> float:
    wall, r = timed(L, ["halb", "export", "ansible", "-c", str(spec), str(dest)])
    if r.returncode != 0:
        sys.exit(f"halb export: {r.stderr}")
    return wall


def ansible(L: Lab, dest: Path, expect_change: bool) -> float:
    argv = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(dest),
            "ansible-playbook", "site.yml", *PYTHON]  # fmt: skip
    wall, r = timed(L, argv)
    recap = {m[0]: [int(x) for x in m[1:]] for m in RECAP.findall(r.stdout)}
    changed = any(v[1] for v in recap.values())
    if r.returncode != 0 or changed != expect_change:
        bad = [ln for ln in r.stdout.splitlines() if ln.startswith(("fatal:", "failed:"))]
        return fail(f"ansible-playbook {dest.name}: rc {r.returncode}, changed {changed}, "
                    f"expected {expect_change}: {bad[:1]}")  # fmt: skip
    return wall


def reset(L: Lab, hosts: list[str]) -> None:
    for h in hosts:
        L.run(h, ["sh", "-c", RESET], timeout=60)


def size_run(L: Lab, n: int, spec: Path, repeats: int, with_ansible: bool) -> dict[str, Any]:
    hosts = lb_hosts(spec)
    dest = L.dir / f"ansible{n}"
    out: dict[str, Any] = {"n": n}
    reset(L, hosts)
    out["halb_first"] = halb_deploy(L, spec, True)
    out["export_s"] = export(L, spec, dest)
    rows: dict[str, list[tuple[float, float]]] = {"no-change": [], "one-file": []}
    for i in range(repeats):
        a = halb_deploy(L, spec, False)
        b = ansible(L, dest, False) if with_ansible else NAN
        rows["no-change"].append((a, b))
        print(f"  {n} hosts no-change {i + 1}: halb {a:.2f} s, ansible {b:.2f} s", file=sys.stderr)
    for i in range(repeats):
        set_inter(spec, f"{2100 + 2 * i}ms")
        a = halb_deploy(L, spec, True)
        set_inter(spec, f"{2101 + 2 * i}ms")
        b = NAN
        if with_ansible:
            export(L, spec, dest)
            b = ansible(L, dest, True)
        rows["one-file"].append((a, b))
        print(f"  {n} hosts one-file {i + 1}: halb {a:.2f} s, ansible {b:.2f} s", file=sys.stderr)
    out["ansible_first"] = NAN
    if with_ansible:
        reset(L, hosts)
        out["ansible_first"] = ansible(L, dest, True)
    print(f"  {n} hosts first: halb {out['halb_first']:.2f} s, "
          f"ansible {out['ansible_first']:.2f} s", file=sys.stderr)  # fmt: skip
    out["rows"] = rows
    return out


def kex_run(L: Lab, n: int, spec: Path, repeats: int) -> dict[str, list[float]]:
    """halb alone, no-change and one-file, over connections with the curve25519 KEX."""
    rows: dict[str, list[float]] = {"no-change": [], "one-file": []}
    timed(L, ["halb", "deploy", "-c", str(spec)])  # whatever the last run left
    for _ in range(repeats):
        rows["no-change"].append(halb_deploy(L, spec, False))
    for i in range(repeats):
        set_inter(spec, f"{2200 + i}ms")
        rows["one-file"].append(halb_deploy(L, spec, True))
    print(f"  {n} hosts, {KEX}: {rows}", file=sys.stderr)
    return rows


def api_profile(L: Lab, spec: Path, change: str | None) -> dict[str, Any]:
    """`deploy()` with every transport command timed; `change`: a health-check interval
    to set first (a one-file change)."""
    if change:
        set_inter(spec, change)
    _, r = timed(L, [sys.executable, "-c", PROFILE, str(spec)])
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def profile(L: Lab, spec: Path, repeats: int) -> dict[str, Any]:
    """Where a no-change deploy spends its time."""
    py = sys.executable
    starts = [timed(L, [py, "-c", "pass"])[0] for _ in range(repeats)]
    version = [timed(L, ["halb", "--version"])[0] for _ in range(repeats)]
    # what `halb deploy` imports: the CLI, then the spec, render and deploy code it runs
    code = "import halb.cli, halb.spec, halb.render, halb.deploy"
    _, r = timed(L, [py, "-X", "importtime", "-c", code])
    imports = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            imports.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    top = sorted((x for x in imports if x[1] <= 3), reverse=True)[:6]
    cli = [timed(L, [py, "-c", "import halb.cli"])[0] for _ in range(repeats)]
    walls = []
    for _ in range(repeats):
        wall, r = timed(L, ["halb", "deploy", "-c", str(spec), "--json"])
        walls.append((wall, json.loads(r.stdout)))
    # ssh set-up alone: a fresh connection to a key-login host, no multiplexing
    ssh = [timed(L, [*L.ssh_argv("node2"), "true"])[0] for _ in range(repeats)]
    doc = api_profile(L, spec, None)
    return {"start": spread(starts), "version": spread(version), "imports": top,
            "cli": spread(cli), "ssh": spread(ssh), "api": doc, "walls": walls}  # fmt: skip


# ------------------------------------------------------------------------------- report


def cell(values: list[float], digits: int = 2, unit: str = " s") -> str:
    ok = [v for v in values if v == v]  # NaN: not run or failed
    if not ok:
        return "–"
    text = spread(ok).fmt(digits, unit) if len(ok) > 1 else f"{ok[0]:.{digits}f}{unit} (n=1)"
    failed = len(values) - len(ok)
    return text + (f", {failed} failed" if failed else "")


def median(values: list[float]) -> float:
    ok = [v for v in values if v == v]
    return spread(ok).median if ok else NAN


def report(
    sizes: dict[int, dict[str, Any]],
    prof: dict[str, Any] | None,
    kex: dict[int, dict[str, list[float]]],
    apis: list[tuple[str, dict[str, Any]]],
) -> str:
    lines = [
        "| LB hosts, run | `halb deploy` wall | `ansible-playbook` wall "
        "| halb / Ansible (target ≤ 0.5) |",
        "|---|---:|---:|---:|",
    ]
    med: dict[tuple[int, str], float] = {}
    for n, s in sizes.items():
        cases = {"first (fresh hosts)": [(s["halb_first"], s["ansible_first"])], **s["rows"]}
        for kind, pairs in cases.items():
            ratios = [a / b for a, b in pairs]
            r = median(ratios)
            judged = "not run" if r != r else f"{cell(ratios, 2, '')} {verdict(r <= 0.5)}"
            lines.append(f"| {n}, {kind} | {cell([a for a, _ in pairs])} | "
                         f"{cell([b for _, b in pairs])} | {judged} |")  # fmt: skip
            med[(n, kind)] = median([a for a, _ in pairs])
    for n, rows in kex.items():
        for kind, values in rows.items():
            lines.append(f"| {n}, {kind}, `{KEX}` | {cell(values)} | – | |")
            med[(n, f"{kind}, {KEX}")] = median(values)
    lines += ["", "| target | measured | |", "|---|---:|---|"]
    if med.get((2, "no-change"), NAN) == med.get((2, "no-change"), NAN):
        v = med[(2, "no-change")]
        lines.append(f"| no-change deploy of 2 LB hosts < 1.5 s | {v:.2f} s | {verdict(v < 1.5)} |")
    kinds = ["first (fresh hosts)", "no-change", "one-file"]
    kinds += [f"{k}, {KEX}" for k in ("no-change", "one-file")]
    for kind in kinds:
        x = med.get((20, kind), NAN) / med.get((2, kind), NAN)
        if x == x:
            lines.append(f"| 20 hosts < 2 × 2 hosts ({kind}) | {x:.2f} × | {verdict(x < 2)} |")
    for n, s in sizes.items():
        lines.append(f"| `halb export ansible` ({n} hosts, not in the Ansible times) | "
                     f"{s['export_s']:.2f} s | |")  # fmt: skip
    if FAILURES:
        lines += ["", "Failed runs (misses, not left out):", ""]
        lines += [f"- {f}" for f in FAILURES]
    if prof:
        api = prof["api"]
        lines += ["", "Profile of a no-change `halb deploy` on 2 LB hosts (medians):", ""]
        lines.append(f"- `python -c pass` in the taskbox: {prof['start'].fmt(2, ' s')}; "
                     f"`halb --version` (interpreter + imports of the CLI): "
                     f"{prof['version'].fmt(2, ' s')}")  # fmt: skip
        lines.append(f"- `python -c 'import halb.cli'` (what every command imports before it "
                     f"runs): {prof['cli'].fmt(2, ' s')}")  # fmt: skip
        heavy = ", ".join(f"{name} {us / 1000:.0f} ms" for us, _, name in prof["imports"])
        lines.append(f"- heaviest imports of a deploy (`halb.cli`, `halb.spec`, `halb.render`, "
                     f"`halb.deploy`; cumulative, one run): {heavy}")  # fmt: skip
        lines.append(
            f"- a fresh SSH connection (key login, `ssh host true`): {prof['ssh'].fmt(2, ' s')}"
        )
        lines.append(f"- spec + inventory + render: {api['load_render']:.2f} s; "
                     f"`deploy()` itself: {api['deploy']:.2f} s")  # fmt: skip
        for host, calls in api["calls"].items():
            first = calls[0][1]
            runs = [s for what, s in calls[1:] if what == "run"]
            lines.append(f"- {host}: connect, take the remote lock and read the facts "
                         f"under it {first:.2f} s (one command; a sudo login adds sudo's "
                         f"check), then {len(runs)} more round trip(s), "
                         f"{sum(runs):.2f} s in all")  # fmt: skip
        for wall, doc in prof["walls"]:
            st = ", ".join(f"{k} {v:.2f}" for k, v in doc.get("stages", {}).items())
            lines.append(f"- `halb deploy --json` wall {wall:.2f} s; the report's stages (s): "
                         f"{st}; the rest: interpreter, imports, spec, render")  # fmt: skip
    if apis:
        lines += ["", "`deploy()` per size and run, every command timed (one run each; the "
                  "first command of a host opens its SSH connection, takes the lock and reads "
                  "the facts):", ""]  # fmt: skip
        lines += [
            "| run | `deploy()` | connect | apply | vips | close "
            "| commands per host | slowest host: each command (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for label, api in apis:
            st = api["stages"]
            calls = api["calls"]
            counts = sorted({len(c) for c in calls.values()})
            slow = max(calls, key=lambda h: sum(x for _, x in calls[h]))
            each = ", ".join(f"{x:.2f}" for _, x in calls[slow])
            lines.append(
                f"| {label} | {api['deploy']:.2f} s | {st.get('connect', 0):.2f} "
                f"| {st.get('apply', 0):.2f} | {st.get('vips', 0):.2f} | {st.get('close', 0):.2f} "
                f"| {'/'.join(map(str, counts))} | {slow}: {each} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="2,20")
    p.add_argument("--repeats20", type=int, help="repeats for 20 hosts (default: --repeats)")
    p.add_argument("--ansible-sizes", default="2,20", help="sizes that Ansible also runs")
    p.add_argument("--no-kex", action="store_true", help=f"leave out the runs with {KEX}")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    t0 = time.monotonic()
    sizes: dict[int, dict[str, Any]] = {}
    kex: dict[int, dict[str, list[float]]] = {}
    apis: list[tuple[str, dict[str, Any]]] = []
    with lab("db", lbs=2, masters=2, nodes=20) as L:
        paths = specs(L)
        for n in (int(x) for x in a.sizes.split(",")):
            print(f"{n} LB hosts", file=sys.stderr)
            reps = a.repeats20 if n == 20 and a.repeats20 else a.repeats
            with_ansible = str(n) in a.ansible_sizes.split(",")
            sizes[n] = size_run(L, n, paths[n], reps, with_ansible)
        if not a.no_kex:
            for n, spec in kex_specs(L, {n: paths[n] for n in sizes}).items():
                reps = a.repeats20 if n == 20 and a.repeats20 else a.repeats
                kex[n] = kex_run(L, n, spec, reps)
                timed(L, ["halb", "deploy", "-c", str(paths[n])])  # back to the plain spec
        prof = profile(L, paths[2], max(3, a.repeats)) if 2 in sizes else None
        for n in sizes:
            apis.append((f"{n}, no-change", api_profile(L, paths[n], None)))
            apis.append((f"{n}, one-file", api_profile(L, paths[n], "2300ms")))
    text = header(sys.argv, time.monotonic() - t0) + "\n\n" + report(sizes, prof, kex, apis)
    print(text)
    if not a.no_write:
        write_section(BEGIN, END, text)


if __name__ == "__main__":
    main()
