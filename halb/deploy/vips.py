"""After a deploy: wait until every VIP has exactly one holder, and has settled."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from halb.facts.ipaddr import IfAddr, holders, read_addrs
from halb.transport import Transport


def wait_for_vips(
    transports: Mapping[str, Transport],
    vips: Mapping[str, str],
    *,
    timeout: float,
    settle: float = 0.0,
    final: Mapping[str, str] | None = None,
    first: Mapping[str, Sequence[IfAddr]] | None = None,
) -> tuple[dict[str, list[str]], str | None]:
    """Poll `ip -o addr` on every LB host until each VIP (name -> address) has exactly one
    holder.

    With `settle`, the same holders must be seen for that long (a peer that just started
    may still preempt), unless every VIP is already on its `final` host (the peer with the
    highest priority: nobody can take it over).

    `first`: every host's addresses as just read by the caller, used as the first look.
    """
    deadline = time.monotonic() + timeout
    stable_since: float | None = None
    last: dict[str, list[str]] | None = None

    def addrs(t: Transport) -> tuple[IfAddr, ...]:
        return read_addrs(t) or ()

    names = list(transports)
    with ThreadPoolExecutor(max_workers=max(1, len(transports))) as pool:
        while True:
            if first is not None and set(first) == set(names):
                seen = {h: tuple(first[h]) for h in names}
                first = None
            else:
                seen = dict(zip(names, pool.map(addrs, transports.values()), strict=True))
            holding = holders(seen, vips)
            now = time.monotonic()
            bad = {v: h for v, h in holding.items() if len(h) != 1}
            if (
                not bad
                and final is not None
                and all(holding[v] == [final[v]] for v in holding if v in final)
            ):
                return holding, None
            if bad or holding != last:
                stable_since = None if bad else now
            last = holding
            if stable_since is not None and now - stable_since >= settle:
                return holding, None
            if now > deadline:
                if not bad:
                    return holding, None  # one holder each, just not for the whole window
                why = "; ".join(
                    f"VIP {v} held by {' and '.join(h)} (split brain)"
                    if h
                    else f"VIP {v} has no holder"
                    for v, h in bad.items()
                )
                return holding, f"{why} after {timeout:g}s"
            time.sleep(0.25)
