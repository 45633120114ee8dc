"""Tables printed to a pipe or a file keep every address on one line."""

from __future__ import annotations

import io
import re

from rich.console import Console

from halb import probe as pr
from halb.cli.probe import _probe_table
from halb.cli.tables import print_table

ADDR = "10.250.123.201"


def _summary(detail: str) -> pr.ProbeSummary:
    target = pr.ProbeTarget("apiserver", "readyz", pr.Via.DIRECT, "master-long-name-1", ADDR, 6443)
    res = pr.ProbeResult(target, pr.Status.REFUSED, 3.0, False, detail=detail)
    fe = pr.FrontendSummary(
        "apiserver", "internal", ADDR, 6443, "readyz", pr.Level.FAIL, "down", 0, None, (res,)
    )
    return pr.ProbeSummary((fe,), 1, 1.0, 12.0)


def _printed(console_width: int, terminal: bool) -> str:
    buf = io.StringIO()
    con = Console(file=buf, width=console_width, force_terminal=terminal, color_system=None)
    print_table(con, _probe_table(_summary("connection refused by " + ADDR + " " * 3 + "x" * 60)))
    return buf.getvalue()


def test_a_pipe_gets_the_full_width_and_whole_addresses() -> None:
    text = _printed(80, terminal=False)
    assert f"{ADDR}:6443" in text
    assert f"connection refused by {ADDR}" in text
    assert max(len(line) for line in text.splitlines()) > 80


def test_a_narrow_terminal_still_keeps_the_address_column_whole() -> None:
    text = _printed(100, terminal=True)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert re.search(re.escape(f"{ADDR}:6443"), text)
