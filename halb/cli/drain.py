"""CLI commands: drain and undrain (planned maintenance of one LB host)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    err,
    out,
    print_json,
)

HostArg = Annotated[str, typer.Argument(help="The LB host, as named in the inventory.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=1, help="Seconds to wait for the VIPs to move."),
]


def _run(
    action: Literal["drain", "undrain"],
    host: str,
    config: ConfigOption,
    json: bool,
    *,
    force: bool = False,
    timeout: float | None = None,
) -> None:
    from halb.drain.run import run
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    console = err() if json else out()
    report = run(cluster, host, action, force=force, timeout=timeout, progress=console.print)
    if json:
        print_json(report.as_dict())
        return
    what = "drained" if action == "drain" else "undrained"
    state = what if report.changed else f"already {what}"
    held = ", ".join(f"{k}@{','.join(h)}" for k, h in report.holders.items())
    out().print(f"{host}: {state} in {report.seconds:.1f}s; VIPs {held}", markup=False)


@app.command()
def drain(
    host: HostArg,
    config: ConfigOption = DEFAULT_CONFIG,
    json: JsonOption = False,
    force: Annotated[
        bool, typer.Option("--force", help="Drain even when no healthy peer would take over.")
    ] = False,
    timeout: TimeoutOption = None,
) -> None:
    """Move every VIP off HOST with no failed request; HAProxy and keepalived keep running."""
    _run("drain", host, config, json, force=force, timeout=timeout)


@app.command()
def undrain(
    host: HostArg,
    config: ConfigOption = DEFAULT_CONFIG,
    json: JsonOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Let HOST hold VIPs again; it takes back the ones it leads after the preempt delay."""
    _run("undrain", host, config, json, timeout=timeout)
