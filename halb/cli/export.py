"""CLI: `halb export ansible`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from halb.cli.common import DEFAULT_CONFIG, ConfigOption, app, err, out

export_app = typer.Typer(help="Export the rendered files for another deploy engine.")
app.add_typer(export_app, name="export")


@export_app.command("ansible")
def export_ansible(
    dest: Annotated[Path, typer.Argument(help="Folder to write (new, empty, or an export).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Write a playbook and role that apply exactly the files halb renders."""
    from halb.export import ansible
    from halb.render import render_cluster
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    files = ansible.build(cluster, render_cluster(cluster))
    ansible.write(dest, files)
    hosts = ", ".join(h.name for h in cluster.lb_hosts)
    out().print(f"wrote {dest} ({len(files)} files) for {hosts}")
    if cluster.auth_password:
        err().print(
            "note: the VRRP password is not in the export; the play reads it at run time "
            "from the spec (or from -e @FILE with halb_vrrp_auth_pass, a file kept outside it)"
        )
    out().print(f"next: cd {dest} && ansible-playbook site.yml --check --diff")
