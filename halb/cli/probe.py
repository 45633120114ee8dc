"""CLI command: probe (backend and VIP health)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from halb.choices import PROBE_CONCURRENCY, PROBE_TIMEOUT
from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    exit_with,
    out,
    print_json,
)

if TYPE_CHECKING:
    from rich.table import Table

    from halb import probe as pr


def _probe_table(s: pr.ProbeSummary) -> Table:
    from rich.table import Table
    from rich.text import Text

    from halb import probe as pr
    from halb.kinds import hostport

    status_style = {
        pr.Status.READY: "green",
        pr.Status.AUTH_REQUIRED: "yellow",
        pr.Status.NOT_READY: "red",
    }
    t = Table(title=f"halb probe (timeout {s.timeout:g} s, {s.elapsed_ms:.0f} ms)")
    for col in ("frontend", "via", "target", "address", "status", "latency", "detail"):
        t.add_column(
            col,
            justify="right" if col == "latency" else "left",
            overflow="fold",
            no_wrap=col in ("target", "address"),
        )
    for f in s.frontends:
        rows = [*f.backends, *([f.vip] if f.vip else []), *([f.vip6] if f.vip6 else [])]
        for r in rows:
            style = status_style.get(r.status, "bold red")
            t.add_row(
                f.name,
                str(r.target.via),
                r.target.name,
                hostport(r.target.address, r.target.port),
                Text(str(r.status), style=style),
                f"{r.latency_ms:.0f} ms",
                Text(r.detail),
            )
        t.add_section()
    return t


@app.command()
def probe(
    config: ConfigOption = DEFAULT_CONFIG,
    json_out: JsonOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.05, help="Seconds per probe.")
    ] = PROBE_TIMEOUT,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Probes in flight at once.")
    ] = PROBE_CONCURRENCY,
    before_install: Annotated[
        bool,
        typer.Option(
            "--before-install",
            help="No apiserver answering is expected (exit 0 for that alone).",
        ),
    ] = False,
) -> None:
    """Probe every backend directly and every frontend through its VIP."""
    from rich.text import Text

    from halb import probe as pr
    from halb.cli.tables import level_text, print_table
    from halb.spec import load_cluster

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
            con.print(level_text(f.level), Text(f"{f.name}: {f.message}"))
    exit_with(summary.exit_status)
