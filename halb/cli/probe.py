"""CLI commands: probe (backend and VIP health) and preflight (network and host checks)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from halb import preflight as pf
from halb import probe as pr
from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    err,
    exit_with,
    handle_errors,
    out,
    print_json,
)
from halb.cli.tables import print_table
from halb.errors import ExitStatus
from halb.spec import load_cluster

_LEVEL_STYLE = {
    "ok": "green",
    "warn": "yellow",
    "pending": "yellow",
    "fail": "bold red",
}
_STATUS_STYLE = {
    pr.Status.READY: "green",
    pr.Status.AUTH_REQUIRED: "yellow",
    pr.Status.NOT_READY: "red",
}


def _level(level: str) -> Text:
    return Text(str(level), style=_LEVEL_STYLE[str(level)])


def _probe_table(s: pr.ProbeSummary) -> Table:
    t = Table(title=f"halb probe (timeout {s.timeout:g} s, {s.elapsed_ms:.0f} ms)")
    for col in ("frontend", "via", "target", "address", "status", "latency", "detail"):
        t.add_column(
            col,
            justify="right" if col == "latency" else "left",
            overflow="fold",
            no_wrap=col in ("target", "address"),
        )
    for f in s.frontends:
        rows = [*f.backends, *([f.vip] if f.vip else [])]
        for r in rows:
            style = _STATUS_STYLE.get(r.status, "bold red")
            t.add_row(
                f.name,
                str(r.target.via),
                r.target.name,
                f"{r.target.address}:{r.target.port}",
                Text(str(r.status), style=style),
                f"{r.latency_ms:.0f} ms",
                Text(r.detail),
            )
        t.add_section()
    return t


@app.command()
@handle_errors
def probe(
    config: ConfigOption = DEFAULT_CONFIG,
    json_out: JsonOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.05, help="Seconds per probe.")
    ] = pr.DEFAULT_TIMEOUT,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Probes in flight at once.")
    ] = pr.DEFAULT_CONCURRENCY,
    before_install: Annotated[
        bool,
        typer.Option(
            "--before-install",
            help="No apiserver answering is expected (exit 0 for that alone).",
        ),
    ] = False,
) -> None:
    """Probe every backend directly and every frontend through its VIP."""
    cluster = load_cluster(config)
    results, elapsed = pr.probe(pr.plan_probes(cluster), timeout=timeout, concurrency=concurrency)
    summary = pr.summarize(
        results, timeout=timeout, elapsed_ms=elapsed, before_install=before_install
    )
    if json_out:
        print_json(pr.summary_document(summary))
    else:
        con = out()
        print_table(con, _probe_table(summary))
        for f in summary.frontends:
            con.print(_level(f.level), Text(f"{f.name}: {f.message}"))
    exit_with(ExitStatus(summary.exit_status))


@app.command()
@handle_errors
def preflight(
    config: ConfigOption = DEFAULT_CONFIG,
    json_out: JsonOption = False,
    open_firewall: Annotated[
        bool,
        typer.Option(
            "--open-firewall",
            help="Add firewall rules accepting VRRP (protocol 112) from the peer LB hosts.",
        ),
    ] = False,
) -> None:
    """Check SSH, sudo, interface, VIP, VRRP router id, ports and firewall on the LB hosts."""
    from halb.transport import for_host

    cluster = load_cluster(config)
    results = pf.run_preflight(cluster, for_host, open_firewall=open_firewall)
    status = pf.exit_status(results)
    if json_out:
        print_json(pf.document(results))
    else:
        t = Table(title="halb preflight")
        for col in ("check", "host", "result", "message"):
            t.add_column(col, overflow="fold", no_wrap=col == "host")
        for r in results:
            t.add_row(r.check, r.host, _level(r.level), Text(r.message))
        print_table(out(), t)
    # The failures again, one line each on stderr, also with --json.
    for r in results:
        if r.level is pf.Level.FAIL:
            err().print(Text("error:", style="bold red"), Text(f"{r.host}: {r.message}"))
    exit_with(status)
