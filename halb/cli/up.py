"""CLI command: up (the whole job, stage by stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from halb.choices import STAGES
from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    err,
    exit_with,
    one_line,
    out,
    print_json,
    warn,
)
from halb.errors import ExitStatus, InputError

_STYLE = {
    "ok": "green",
    "changed": "cyan",
    "unchanged": "green",
    "skipped": "dim",
    "failed": "bold red",
}


@app.command()
def up(
    config: ConfigOption = DEFAULT_CONFIG,
    until: Annotated[
        str, typer.Option("--until", help=f"Last stage to run: {', '.join(STAGES)}.")
    ] = STAGES[-1],
    reinstall: Annotated[
        bool, typer.Option("--reinstall", help="Run the installer again after a success.")
    ] = False,
    log: Annotated[Path | None, typer.Option("--log", help="Installer log file.")] = None,
    json: JsonOption = False,
) -> None:
    """preflight → render → deploy → verify → write-config → install; re-run to resume."""
    from rich.table import Table
    from rich.text import Text

    from halb.cli.tables import print_table
    from halb.installers import apiserver_frontend
    from halb.kinds import hostport
    from halb.spec import load_cluster
    from halb.up import Runner, run_up

    if until not in STAGES:
        raise InputError(f"--until {until}: not a stage (stages: {', '.join(STAGES)})")
    cluster = load_cluster(config)
    con = err() if json else out()
    for w in cluster.warnings:
        if w.level == "note":
            con.print(Text(f"note: {w}"))
        else:
            warn(str(w), con)
    runner = Runner(
        cluster,
        lambda line: con.print(Text(one_line(line, 2000))),
        reinstall=reinstall,
        install_log=log,
        console=con,
    )
    total = STAGES.index(until) + 1

    def on_stage(i: int, name: str) -> None:
        con.print(Text(f"[{i + 1}/{total}] {name}", style="bold"))

    results = run_up(runner, until, on_stage)
    failed = next((r for r in results if r.failed), None)
    if json:
        print_json(
            {
                "ok": failed is None,
                "stages": [
                    {
                        "stage": r.name,
                        "status": r.status,
                        "detail": r.detail,
                        "seconds": r.seconds,
                        "data": r.data or None,
                        "next": r.next_step or None,
                    }
                    for r in results
                ],
            }
        )
    else:
        t = Table(title=f"halb up: {cluster.name}")
        for col in ("stage", "result", "time", "detail"):
            t.add_column(col)
        for r in results:
            t.add_row(
                r.name,
                Text(r.status, style=_STYLE.get(r.status, "")),
                f"{r.seconds:.1f} s",
                Text(one_line(r.detail)),
            )
        print_table(con, t)
        if failed:
            con.print(Text(one_line(f"stopped at {failed.name}: {failed.detail}"), "bold red"))
            con.print(Text(one_line(f"next: {failed.next_step}")))
        elif until != STAGES[-1]:
            nxt = STAGES[STAGES.index(until) + 1]
            con.print(Text(f"done up to {until}; `halb up` continues with {nxt}"))
        else:
            api = apiserver_frontend(cluster)
            con.print(
                Text(
                    f"done: apiserver at {hostport(api.address, api.port)}, "
                    f"console at {cluster.console_url}"
                )
            )
    exit_with(failed.exit_status if failed else ExitStatus.OK)
