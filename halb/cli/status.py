"""CLI command: status (VRRP state, VIP holders, HAProxy and backend health)."""

from __future__ import annotations

from halb.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    app,
    exit_with,
    out,
    print_json,
)
from halb.errors import ExitStatus


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, json: JsonOption = False) -> None:
    """VRRP state, VIP holders, HAProxy and backend health per LB host (exit 1 on a problem)."""
    from halb import status as st
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    report = st.status(cluster)
    if json:
        print_json(report.as_dict())
    else:
        console = out()
        for line in st.render_text(report):
            console.print(line, markup=False)
    exit_with(ExitStatus.OK if report.ok else ExitStatus.CHECK_FAILED)
