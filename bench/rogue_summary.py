"""Summarise `halb test-failover --json` rounds of the rogue faults: per fault, the rounds,
failed requests, the worst outage, who held the first VIP during the fault, whether it moved.

    python bench/rogue_summary.py drill.json [more.json ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any


def held_during(r: dict[str, Any]) -> str:
    """The first VIP's holders as the polls saw them during the fault, in order."""
    first = next(iter(r["vips"]))
    seen: list[str] = []
    for p in r["polls"]:
        who = "+".join(p["holders"].get(first, [])) or "nobody"
        if not seen or seen[-1] != who:
            seen.append(who)
    return " > ".join(seen) or "-"


def main(paths: list[str]) -> None:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        for r in doc["rounds"]:
            rows[r["fault"]].append(r)
    cols = ("fault", "rounds", "failed requests", "worst outage s", "2nd outage s")
    cols += ("first VIP held by", "moved")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for fault, rs in rows.items():
        figs = [r["figures"] for r in rs]
        failed = sum(sum(f["failed"].values()) for f in figs)
        out = max(max(f["outage_s"].values()) for f in figs)
        second = max(max(f["second_outage_s"].values()) for f in figs)
        held = sorted({held_during(r) for r in rs})
        moved = sum(1 for f in figs if f["vip_moved"])
        print(
            f"| {fault} | {len(rs)} | {failed} | {out:.2f} | {second:.2f} | "
            f"{'; '.join(held)} | {moved}/{len(rs)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
