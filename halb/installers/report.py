"""How an install ended, for a person and for --json: stages with times, why, what next."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from halb.errors import Interrupted
from halb.installers.launch import plan_launch
from halb.installers.runner import RunResult, clock_text, run_installer
from halb.installers.watch import Outcome, StageRecord

if TYPE_CHECKING:
    from halb.spec import Cluster

_STAGE_WORDS = {True: ("passed", "green"), False: ("FAILED", "bold red"), None: ("ended", "")}


def check_console(url: str, timeout: float = 5.0) -> str:
    """Does the console answer at `url`? A few words, for the report."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return f"answers (HTTP {resp.status})"
    except urllib.error.HTTPError as e:
        return f"answers (HTTP {e.code})"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return f"does not answer ({reason})"


def headline(result: RunResult) -> str:
    v = result.verdict
    took = clock_text(result.seconds)
    at = f" at stage {v.stage}" if v.stage else ""
    if v.outcome is Outcome.SUCCEEDED:
        return f"install succeeded in {took} ({v.why})"
    if v.outcome is Outcome.STOPPED:
        return f"halb stopped the installer after {took}{at}: {v.why}"
    if v.outcome is Outcome.INTERRUPTED:
        return f"install interrupted after {took}{at}; the installer and its children stopped"
    return f"install failed after {took}{at}: {v.why}"


def print_report(
    console: Console, result: RunResult, *, vip_url: str = "", vip_answer: str = ""
) -> None:
    v = result.verdict
    if v.stages:
        t = Table(title="installer stages")
        for col in ("stage", "result", "took"):
            t.add_column(col)
        for rec in v.stages:
            word, style = _STAGE_WORDS[rec.ok]
            t.add_row(rec.name, Text(word, style=style), clock_text(_took(rec)))
        console.print(t)
    style = "green" if v.ok else "bold red"
    console.print(Text(headline(result), style=style))
    if v.advice:
        console.print(Text(f"what to do: {v.advice}"))
    console.print(Text(f"log: {result.log}"))
    if v.ok and vip_url:
        console.print(
            Text.assemble(
                "console through the external VIP: ",
                (vip_url, "bold"),
                f" {vip_answer or '(not probed)'}",
            )
        )
    if v.console_url:
        console.print(Text(f"the installer printed the console at {v.console_url} (one node)"))


def _took(rec: StageRecord) -> float:
    return (rec.ended or rec.started) - rec.started


def result_document(result: RunResult, vip_url: str = "", vip_answer: str = "") -> dict[str, Any]:
    v = result.verdict
    return {
        "outcome": str(v.outcome),
        "ok": v.ok,
        "exit_code": v.exit_code,
        "stage": v.stage or None,
        "why": v.why,
        "advice": v.advice or None,
        "seconds": round(result.seconds, 1),
        "log": str(result.log),
        "stages": [{"name": r.name, "ok": r.ok, "seconds": round(_took(r), 1)} for r in v.stages],
        "installer_console_url": v.console_url or None,
        "console_url": vip_url or None,
        "console_answer": vip_answer or None,
    }


@dataclass(frozen=True)
class Installed:
    """An install run with its console check, as `halb install` and `halb up` report it."""

    result: RunResult
    console_url: str  # through the external VIP ("" without a console frontend)
    console_answer: str  # what the probe saw ("" when not probed)

    def raise_if_interrupted(self) -> None:
        if self.result.verdict.outcome is Outcome.INTERRUPTED:
            raise Interrupted("interrupted: the installer and its children were stopped")


def install(
    cluster: Cluster, log: Path, console: Console, say: Callable[[str], None], *, probe: bool = True
) -> Installed:
    """Launch the cluster's installer as its docs do, run it to its end, probe the console
    through the external VIP after a success."""
    ins = cluster.spec.installer
    plan = plan_launch(ins.kind, cluster.base_dir, ins.config, ins.command)
    say(f"running {plan.describe()}; log: {log}")
    result = run_installer(plan, log, console)
    url = cluster.console_url
    answer = check_console(url) if (url and probe and result.verdict.ok) else ""
    return Installed(result, url, answer)
