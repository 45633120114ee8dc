"""CLI commands: init, validate, render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from halb.errors import ExitStatus, InputError
from halb.kinds import one_line

# The heavy parts (pydantic models, jinja2 templates) are imported by the commands that
# use them, so that every other command starts without them.
if TYPE_CHECKING:
    from halb.checkconf import CheckResult
    from halb.render import HostFiles
    from halb.spec import Finding


@app.command()
def init(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Ansible inventory.")],
    vip: Annotated[str, typer.Option("--vip", help="Internal VIP (apiserver endpoint).")],
    external_vip: Annotated[
        str | None, typer.Option("--external-vip", help="External VIP for the console.")
    ] = None,
    interface: Annotated[str, typer.Option("--interface", help="LB hosts' interface.")] = "eth0",
    cluster: Annotated[str | None, typer.Option("--cluster", help="Cluster name.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Spec file to write.")] = (
        DEFAULT_CONFIG
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter halb.yaml from an inventory."""
    from halb.files import atomic_write
    from halb.inventory import load_inventory
    from halb.starter import relative_ref, starter_spec

    inv = load_inventory(inventory)
    text, notes = starter_spec(
        inv, relative_ref(inventory, output), vip, external_vip, interface, cluster, output.parent
    )
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give -o the spec file to write")
    if (output.exists() or output.is_symlink()) and not force:
        raise InputError(f"{output}: exists; use --force to replace it")
    if not output.parent.is_dir():
        raise InputError(f"{output.parent}: folder does not exist; create it first")
    try:
        atomic_write(output, text)  # a replaced file keeps its mode
    except OSError as e:
        raise InputError(f"{output}: cannot write: {e.strerror or e}") from None
    for n in notes:
        err().print(f"note: {one_line(n)}")
    name = one_line(str(output))  # a path may hold a newline or an escape sequence
    out().print(f"wrote {name}; next: halb validate -c {name}")


def _print_findings(findings: list[Finding]) -> None:
    from rich.markup import escape

    e = err()
    for f in findings:
        style = {"error": "bold red", "warning": "yellow"}.get(f.level, "cyan")
        e.print(f"[{style}]{f.level}:[/] {escape(str(f))}", markup=True)


@app.command()
def validate(config: ConfigOption = DEFAULT_CONFIG, json: JsonOption = False) -> None:
    """Offline checks of halb.yaml and its inventory (exit 2 on an error)."""
    from halb.spec import check

    cluster, findings = check(config)
    errors = [f for f in findings if f.level == "error"]
    if json:
        print_json({"ok": not errors, "findings": [f.as_dict() for f in findings]})
    else:
        _print_findings(findings)
        if cluster is not None:
            vips = ", ".join(
                f"{v.name} {v.address} (router id {v.router_id})" for v in cluster.vips
            )
            out().print(
                f"ok: {len(cluster.lb_hosts)} LB host(s) "
                f"({', '.join(cluster.lb_host_names)}), {vips}"
            )
    exit_with(ExitStatus.BAD_INPUT if errors else ExitStatus.OK)


def check_rendered(rendered: dict[str, HostFiles], outdir: Path) -> list[CheckResult]:
    from halb.checkconf import check_host_root

    return [r for host in rendered for r in check_host_root(host, outdir / host)]


@app.command()
def render(
    config: ConfigOption = DEFAULT_CONFIG,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write.")] = Path(
        "rendered"
    ),
    check_files: Annotated[
        bool, typer.Option("--check", help="Run haproxy -c and keepalived -t on every file.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Render HAProxy, keepalived, scripts, sysctl and drop-ins: one directory per LB host."""
    from halb.outdir import write_rendered
    from halb.render import render_cluster
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    _print_findings(list(cluster.warnings))
    rendered = render_cluster(cluster)
    written = write_rendered(rendered, output)
    results = check_rendered(rendered, output) if check_files else []
    failed = [r for r in results if not r.ok]
    if json:
        print_json(
            {
                "output": str(output),
                "hosts": {h: sorted(files) for h, files in rendered.items()},
                "checks": [r.__dict__ for r in results],
                "ok": not failed,
            }
        )
    else:
        o = out()
        o.print(f"wrote {len(written)} files for {len(rendered)} host(s) under {output}/")
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[bold red]FAILED[/]"
            o.print(f"  {r.host:<12} {r.tool:<14} {mark}", markup=True)
            if not r.ok:
                for line in r.output.splitlines():
                    o.print(f"      {line}", markup=False)
    exit_with(ExitStatus.CHECK_FAILED if failed else ExitStatus.OK)
