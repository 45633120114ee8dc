"""CLI command: preflight (network and host checks on the LB hosts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    err,
    exit_with,
    out,
    print_json,
)


@app.command()
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
    from rich.table import Table
    from rich.text import Text

    from halb import preflight as pf
    from halb.cli.tables import level_text, print_table
    from halb.preflight.open_firewall import FirewallCommand
    from halb.spec import load_cluster
    from halb.transport import for_host

    def show(commands: Sequence[FirewallCommand]) -> None:
        # before anything runs: what --open-firewall runs (now, or when given)
        head = "opening VRRP:" if open_firewall else "--open-firewall would run:"
        err().print(Text(head, style="bold"))
        for c in commands:
            err().print(Text(f"  {c.host}: {c.what}"))

    cluster = load_cluster(config)
    results = pf.run_preflight(cluster, for_host, open_firewall=open_firewall, show=show)
    status = pf.exit_status(results)
    if json_out:
        print_json(pf.document(results))
    else:
        t = Table(title="halb preflight")
        for col in ("check", "host", "result", "message"):
            t.add_column(col, overflow="fold", no_wrap=col == "host")
        for r in results:
            t.add_row(r.check, r.host, level_text(r.level), Text(r.message))
        print_table(out(), t)
    # The failures again, one line each on stderr, also with --json.
    for r in results:
        if r.level is pf.Level.FAIL:
            err().print(Text("error:", style="bold red"), Text(f"{r.host}: {r.message}"))
    exit_with(status)
