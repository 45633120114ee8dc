"""Failover drill benchmark: `halb test-failover` rounds per fault and VRRP profile.

Needs root. Builds its own lab (unique name, torn down at the end, also on failure),
deploys each profile as `halb deploy` renders it, runs the drill from the taskbox with
`--rounds N` per fault, and writes the p50 / p95 / max table with the targets into
bench/README.md (between the DRILL markers).

    sudo python3 bench/drill_bench.py [--rounds 10] [--profiles default,fast]
                                      [--faults all] [--rate 100] [--no-write]
                                      [--colocated] [--ip-family 4|6|dual]

`--colocated` runs it on the KubeSphere guide's six machines instead (3 masters that
carry the VIP beside the apiserver, 3 nodes, no LB hosts; VIP:6443 and VIP:30880 through
halb's nftables redirect) and writes its own table (the DRILL-COLOCATED markers).
`--ip-family 6` (or `dual`) runs it on an IPv6-only (dual-stack) lab, with a row per
frontend and family, into its own table (the DRILL-IPV6 or DRILL-DUAL markers); the
takeover of an IPv6 VIP is its new holder's unsolicited neighbour advertisement.

It also prints the failback per profile, fault and frontend: the requests lost from the
restore to the end of the round, the second gap, and when the old holder's GARP came.
`--keep` copies the drill's JSON to bench/results; `--from-results DIR` rewrites the
tables from such copies, with the figures recomputed from their raw records.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from halb import lab as labmod
from halb.drill import report as rp
from halb.drill.model import lane, record_from_dict

ROOT = Path(__file__).resolve().parent
README = ROOT / "README.md"
TOP_README = ROOT.parent / "README.md"
BEGIN, END = "<!-- DRILL:BEGIN -->", "<!-- DRILL:END -->"
CO_BEGIN, CO_END = "<!-- DRILL-COLOCATED:BEGIN -->", "<!-- DRILL-COLOCATED:END -->"
SUMMARY_BEGIN, SUMMARY_END = "<!-- DRILL-SUMMARY:BEGIN -->", "<!-- DRILL-SUMMARY:END -->"
FAMILY_MARK = {"6": "DRILL-IPV6", "dual": "DRILL-DUAL"}  # --ip-family: a table of its own

# (profile, fault) -> (what, limit in s, on which statistic); from issue 8.
TARGETS: dict[tuple[str, str], list[tuple[str, float]]] = {
    ("fast", "link"): [("p50", 0.100), ("max", 0.200)],
    ("fast", "kill"): [("max", 0.200)],
    ("fast", "haproxy"): [("max", 0.200)],
    ("fast", "graceful"): [("max", 0.050)],
    ("default", "link"): [("max", 3.5)],
}


def run_profile(lab: labmod.Lab, profile: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = lab.dir / f"halb-{profile}.yaml"
    text = re.sub(r"vrrp: \{profile: \w+\}", f"vrrp: {{profile: {profile}}}", lab.spec.read_text())
    spec.write_text(text)
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(spec)], timeout=180)
    if r.returncode != 0:
        raise SystemExit(f"deploy ({profile}) failed: {r.stderr.strip()}")
    time.sleep(3)  # let the new VRRP timers settle
    out = lab.dir / f"drill-{profile}.json"
    argv = ["halb", "test-failover", "-c", str(spec), "--fault", args.faults]
    argv += ["--rounds", str(args.rounds), "--rate", str(args.rate), "--json", str(out)]
    argv += ["--plot", str(lab.dir / f"drill-{profile}.png")]
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    r = lab.run("taskbox", argv, timeout=args.rounds * 6 * 60 + 300)
    sys.stderr.write(r.stdout[-3000:] + r.stderr[-2000:])
    if not out.exists():
        raise SystemExit(f"drill ({profile}) wrote no JSON (exit {r.returncode})")
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["_elapsed"] = time.monotonic() - started
    doc["_load"] = [load_before, os.getloadavg()[0]]  # the machine is shared: say how busy
    doc["_rc"] = r.returncode
    if args.keep:  # the JSON with the bench's own fields (time, load), for --from-results
        (ROOT / "results").mkdir(exist_ok=True)
        (ROOT / "results" / out.name).write_text(json.dumps(doc))
        png = lab.dir / f"drill-{profile}.png"
        (ROOT / "results" / png.name).write_bytes(png.read_bytes())
    return doc


def verdict(profile: str, fault: str, row: dict[str, Any]) -> str:
    targets = TARGETS.get((profile, fault))
    if not targets:
        return ""
    p50, _, mx = row["outage"]
    parts = []
    for what, limit in targets:
        val = p50 if what == "p50" else mx
        ok = val <= limit
        parts.append(f"{what} ≤ {limit * 1000:.0f} ms: {'met' if ok else '**missed**'}")
    return "; ".join(parts)


def ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1000:.0f}"


def _ipv6(results: dict[str, dict[str, Any]]) -> bool:
    return any(row.get("family", 4) == 6 for d in results.values() for row in d["table"])


def _frontend(row: dict[str, Any], ipv6: bool) -> str:
    """The frontend cell; with IPv6 rows, the family beside it."""
    return f"{row['frontend']} | IPv{row.get('family', 4)}" if ipv6 else str(row["frontend"])


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    six = _ipv6(results)
    lines = [
        f"| profile | fault | frontend{' | family' if six else ''} | rounds "
        "| outage p50 / p95 / max (ms) | 2nd outage p50 / p95 / max (ms) "
        f"| takeover {'GARP / NA' if six else 'GARP'} p50 / p95 / max (ms) "
        "| failed requests (all / 1st outage / failback) | target |",
        f"|---|---|---|{'---|' if six else ''}---:|---:|---:|---:|---:|---|",
    ]
    for profile, doc in results.items():
        for row in doc["table"]:
            tk = row["takeover"] or [None, None, None]
            lines.append(
                f"| {profile} | {row['fault']} | {_frontend(row, six)} | {row['rounds']} "
                f"| {' / '.join(ms(x) for x in row['outage'])} "
                f"| {' / '.join(ms(x) for x in row['second'])} "
                f"| {' / '.join(ms(x) for x in tk)} "
                f"| {row['failed']} / {row['outage_failed']} / {row['failback_failed']} "
                f"| {verdict(profile, row['fault'], row)} |"
            )
    return lines


FAILBACK_HEADER = (
    "| profile | fault | frontend | rounds | failback failed (sum / max per round) "
    "| 2nd gap p50 / p95 / max (ms) | old holder's GARP after the restore p50 / max (ms) |"
)
FAILBACK_HEADER6 = (
    "| profile | fault | frontend | family | rounds | failback failed (sum / max per round) "
    "| 2nd gap p50 / p95 / max (ms) | old holder's GARP / NA after the restore p50 / max (ms) |"
)


def failback_line(
    profile: str, doc: dict[str, Any], row: dict[str, Any], ipv6: bool = False
) -> str:
    """What the failback (restore -> end of the round, the old holder taking the VIP back)
    cost one frontend's clients under one fault, and when the old holder's GARP came (its
    NA for an IPv6 VIP: the first IPv6 VIP's)."""
    figs = [r["figures"] for r in doc["rounds"] if r["fault"] == row["fault"]]
    fe = lane(row["frontend"], row.get("family", 4))
    most = max(f["failback_failed"][fe] for f in figs)
    backs = [b for f in figs if (b := _failback_s(f, row.get("family", 4))) is not None]
    back = f"{ms(rp.percentile(backs, 50))} / {ms(max(backs))}" if backs else "–"
    if len(backs) < len(figs):
        back += f" ({len(figs) - len(backs)} rounds without)"
    second = " / ".join(ms(x) for x in row["second"])
    return (
        f"| {profile} | {row['fault']} | {_frontend(row, ipv6)} | {row['rounds']} "
        f"| {row['failback_failed']} / {most} | {second} | {back} |"
    )


def _failback_s(f: dict[str, Any], family: int) -> float | None:
    """The round's failback time for one family: the first IPv6 VIP's NA for IPv6 rows."""
    six = f.get("ipv6_vips") or {}
    if family == 6 and six:
        return next(iter(six.values()))["failback_s"]
    return f["failback_s"]


def failback_table(results: dict[str, dict[str, Any]]) -> list[str]:
    six = _ipv6(results)
    rows = [(p, doc, row) for p, doc in results.items() for row in doc["table"]]
    head = (
        [FAILBACK_HEADER6, "|---|---|---|---|---:|---:|---:|---:|"]
        if six
        else [FAILBACK_HEADER, "|---|---|---|---:|---:|---:|---:|"]
    )
    return head + [failback_line(*x, ipv6=six) for x in rows]


def refigure(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures and the table recomputed from a kept document's raw records (probes,
    packets, timestamps), so a run of an older halb gets today's figures."""
    records = [record_from_dict(r) for r in doc["rounds"]]
    figs = [rp.figures(r) for r in records]
    new = rp.document(records, figs, doc["settings"], doc["problems"])
    return {**doc, "rounds": new["rounds"], "table": new["table"]}


def extra_facts(results: dict[str, dict[str, Any]]) -> list[str]:
    """Per profile and fault: most holders seen at once, old-holder answers, baseline."""
    lines = [
        "| profile | fault | most holders at once | SYN-ACKs from the old holder after "
        "takeover (sum) | baseline gap max (ms) |",
        "|---|---|---:|---:|---:|",
    ]
    for profile, doc in results.items():
        by: dict[str, list[dict[str, Any]]] = {}
        for r in doc["rounds"]:
            by.setdefault(r["fault"], []).append(r["figures"])
        for fault, figs in by.items():
            most = max(max(f["max_holders"].values(), default=0) for f in figs)
            olds = [f["old_holder_answers"] for f in figs if f["old_holder_answers"] is not None]
            base = max(max(f["baseline_gap_s"].values(), default=0) for f in figs)
            lines.append(
                f"| {profile} | {fault} | {most} | {sum(olds) if olds else '–'} | {ms(base)} |"
            )
    return lines


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    """A few lines for the top-level README: worst frontend per fault and profile."""
    lines = [
        "| fault | " + " | ".join(f"{p}: outage p50 / max" for p in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    faults = list(dict.fromkeys(r["fault"] for doc in results.values() for r in doc["table"]))
    for fault in faults:
        cells = []
        for profile, doc in results.items():
            rows = [
                r
                for r in doc["table"]
                if r["fault"] == fault and not (fault == "apiserver" and r["frontend"] == fault)
            ]
            if not rows:
                cells.append("–")
                continue
            worst = max(rows, key=lambda r: r["outage"][2])
            mark = verdict(profile, fault, worst)
            note = " (target missed)" if "missed" in mark else (" (target met)" if mark else "")
            cells.append(f"{ms(worst['outage'][0])} / {ms(worst['outage'][2])} ms{note}")
        lines.append(f"| {fault} | " + " | ".join(cells) + " |")
    return lines


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        return f"{pre}{begin}\n{body}\n{end}{post}"
    return text + f"\n{begin}\n{body}\n{end}\n"


def write(results: dict[str, dict[str, Any]], args: argparse.Namespace, took: float) -> str:
    problems = [p for d in results.values() for p in d["problems"][:5]]
    loads = [
        f"{prof} {d['_load'][0]:.1f} → {d['_load'][1]:.1f}"
        for prof, d in results.items()
        if "_load" in d
    ]
    co = " --colocated" if args.colocated else ""
    co += f" --ip-family {args.ip_family}" if args.ip_family != "4" else ""
    head = (
        f"Run: `sudo python3 bench/drill_bench.py --rounds {args.rounds} --rate {args.rate:g}{co}` "
        f"on {datetime.now(UTC).date()}, CPython {platform.python_version()}, Linux "
        f"{platform.release()}, {os.cpu_count()} CPU(s), {took / 60:.0f} min; "
        f"1-min load average before → after each profile: {', '.join(loads) or 'not recorded'}; "
        f"problems reported by the drill: {'; '.join(problems) or 'none'}."
    )
    body = "\n".join(
        [
            head,
            "",
            *table(results),
            "",
            *extra_facts(results),
            "",
            "Failback (restore -> end of the round):",
            "",
            *failback_table(results),
        ]
    )
    short = "\n".join(
        [
            "Client-visible outage in the lab, worst frontend, "
            f"{args.rounds} rounds per fault (from `bench/drill_bench.py`):",
            "",
            *summary(results),
        ]
    )
    if not args.no_write and args.ip_family in FAMILY_MARK:
        mark = FAMILY_MARK[args.ip_family]
        begin, end = f"<!-- {mark}:BEGIN -->", f"<!-- {mark}:END -->"
        README.write_text(replace_between(README.read_text(), begin, end, body))
    elif not args.no_write and args.colocated:
        README.write_text(replace_between(README.read_text(), CO_BEGIN, CO_END, body))
    elif not args.no_write:
        README.write_text(replace_between(README.read_text(), BEGIN, END, body))
        TOP_README.write_text(
            replace_between(TOP_README.read_text(), SUMMARY_BEGIN, SUMMARY_END, short)
        )
    return body + "\n\n" + short


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--profiles", default="default,fast")
    p.add_argument("--faults", default="all")
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--keep", action="store_true", help="copy JSON and PNG to bench/results")
    p.add_argument(
        "--colocated",
        action="store_true",
        help="the guide's six machines: 3 masters carry the VIP, 3 nodes, no LB hosts",
    )
    p.add_argument(
        "--ip-family",
        choices=["4", "6", "dual"],
        default="4",
        help="the lab's address family: IPv6 only, or dual-stack (a table of its own)",
    )
    p.add_argument(
        "--from-results",
        type=Path,
        help="rewrite the tables from drill-PROFILE.json files kept there (no lab run)",
    )
    args = p.parse_args()
    if args.colocated and args.ip_family != "4":
        p.error("--colocated needs halb's redirect, which is IPv4 only (docs/ipv6.md)")
    if args.from_results:
        results = {
            prof: refigure(json.loads((args.from_results / f"drill-{prof}.json").read_text()))
            for prof in args.profiles.split(",")
            if prof
        }
        print(write(results, args, float(os.environ.get("DRILL_BENCH_SECONDS", "0"))))
        return
    labmod.require_root()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the lab comes down on TERM too
    name = labmod.pick_name("db")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="halb-drill-bench-") as tmp:
        if args.colocated:
            lab = labmod.up(name, Path(tmp) / "lab", lbs=0, masters=3, nodes=3)
        else:
            lab = labmod.up(
                name, Path(tmp) / "lab", lbs=2, masters=2, nodes=2, ip_family=args.ip_family
            )
        try:
            results = {
                prof: run_profile(lab, prof, args) for prof in args.profiles.split(",") if prof
            }
        finally:
            labmod.down(name, Path(tmp) / "lab")
    print(write(results, args, time.monotonic() - started))


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as e:
        raise SystemExit(f"timed out: {e}") from None
