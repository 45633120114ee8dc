"""CLI command: deploy."""

from __future__ import annotations

import threading
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
from halb.errors import DeployError, ExitStatus, HalbError


@app.command()
def deploy(
    config: ConfigOption = DEFAULT_CONFIG,
    diff: Annotated[bool, typer.Option("--diff", help="Show unified diffs of changes.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    limit: Annotated[
        list[str] | None, typer.Option("--limit", help="Only this LB host (repeatable).")
    ] = None,
    no_install: Annotated[
        bool, typer.Option("--no-install", help="Do not install missing haproxy/keepalived.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Validate on the targets, back up, replace atomically, reload, verify; roll back on error."""
    from halb import deploy as dep
    from halb.render import render_cluster
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    rendered = render_cluster(cluster)
    # progress goes to stderr so that --json keeps stdout for the document
    console = err() if json else out()
    lock = threading.Lock()

    def progress(host: str, message: str) -> None:
        with lock:
            console.print(f"{host}: {message}", markup=False)

    def show_diff(lines: list[str]) -> None:
        with lock:
            for line in lines:
                console.print(line, markup=False)

    try:
        report = dep.deploy(
            cluster,
            rendered,
            limit=limit or (),
            dry_run=dry_run,
            install=not no_install,
            diff=show_diff if diff else None,
            progress=progress,
        )
    except HalbError as e:
        if json:  # scripts still get a document; the message also goes to stderr
            print_json({"ok": False, "error": str(e)})
        raise
    if json:
        print_json(report.as_dict())
    elif dry_run:
        for line in dep.plan_lines(report.plan):
            console.print(line, markup=False)
    else:
        for h in report.hosts:
            line = f"{h.host}: {h.status}"
            if h.error:
                line += f" ({h.error})"
            if h.rollback_error:
                line += f"; rollback failed: {h.rollback_error}"
            console.print(line, markup=False)
        for vip, holders in report.vips.items():
            console.print(f"VIP {vip}: {', '.join(holders) or 'no holder'}", markup=False)
        took = ", ".join(f"{k} {v:.1f}s" for k, v in report.stages.items() if k != "close")
        console.print(f"{'ok' if report.ok else 'FAILED'} in {report.seconds:.1f}s ({took})")
    if not report.ok:
        if json:
            exit_with(ExitStatus.CHECK_FAILED)
        failed = [h for h in report.hosts if not h.ok]
        raise DeployError(
            "; ".join(f"{h.host} {h.status}" for h in failed) or (report.vip_error or "failed")
        )


@app.command()
def undeploy(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", "--limit", help="Only this LB host (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would go; change nothing.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Stop keepalived then HAProxy and remove what deploy installed; restore replaced files."""
    from halb.deploy.undeploy import undeploy as run_undeploy
    from halb.deploy.undeploy import undo_lines
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    console = err() if json else out()
    lock = threading.Lock()

    def progress(name: str, message: str) -> None:
        with lock:
            console.print(f"{name}: {message}", markup=False)

    try:
        report = run_undeploy(cluster, limit=host or (), dry_run=dry_run, progress=progress)
    except HalbError as e:
        if json:
            print_json({"ok": False, "error": str(e)})
        raise
    if json:
        print_json(report.as_dict())
    elif dry_run:
        for line in undo_lines(report):
            console.print(line, markup=False)
    else:
        for h in report.hosts:
            console.print(f"{h.host}: {h.status}" + (f" ({h.error})" if h.error else ""))
        console.print(f"{'ok' if report.ok else 'FAILED'} in {report.seconds:.1f}s")
    if not report.ok:
        if json:
            exit_with(ExitStatus.CHECK_FAILED)
        raise DeployError("; ".join(f"{h.host} failed: {h.error}" for h in report.hosts if h.error))
