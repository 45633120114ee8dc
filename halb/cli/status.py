"""CLI command: status (VRRP state, VIP holders, HAProxy and backend health)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    exit_with,
    out,
    print_json,
)
from halb.errors import ExitStatus, InputError
from halb.files import atomic_write


@app.command()
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    json: JsonOption = False,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Also write the foreign VRRP and ARP counts here, for node_exporter's "
            "textfile collector (*.prom).",
        ),
    ] = None,
) -> None:
    """VRRP state, VIP holders, HAProxy and backend health per LB host (exit 1 on a problem)."""
    from halb import status as st
    from halb.intruders import textfile as prom_text
    from halb.spec import load_cluster

    if textfile is not None and not textfile.parent.resolve().is_dir():
        raise InputError(f"--textfile {textfile}: folder {textfile.parent} does not exist")
    cluster = load_cluster(config)
    report = st.status(cluster)
    if textfile is not None:
        atomic_write(textfile, prom_text(report.intruders).encode(), 0o644)
    if json:
        print_json(report.as_dict())
    else:
        console = out()
        for line in st.render_text(report):
            console.print(line, markup=False)
    exit_with(ExitStatus.OK if report.ok else ExitStatus.CHECK_FAILED)
