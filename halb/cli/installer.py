"""CLI commands: write-config (LB settings into the installer's config) and install."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from halb.choices import INSTALLER_KINDS
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
from halb.errors import InputError

if TYPE_CHECKING:
    from halb.spec import Cluster


def _config_path(cluster: Cluster, path: Path | None) -> Path:
    if path is not None:
        return path
    rel = cluster.spec.installer.config
    if rel is None:
        raise InputError(f"{cluster.config_path}: installer.config is not set; pass PATH")
    return cluster.base_dir / rel


@app.command("write-config")
def write_config_cmd(
    path: Annotated[
        Path | None,
        typer.Argument(help="Installer config (default: installer.config from halb.yaml)."),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    installer: Annotated[
        str | None,
        typer.Option(
            "--installer", help=f"One of {', '.join(INSTALLER_KINDS)} (default: installer.kind)."
        ),
    ] = None,
    diff: Annotated[bool, typer.Option("--diff", help="Show the change as a diff.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Write the load balancer (VIP, port, domain, SANs) into the installer's config."""
    from halb.installers import installer_kind, lb_settings, write_config
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    kind, said_by = installer_kind(cluster, installer)
    target = _config_path(cluster, path)
    result = write_config(
        kind, target, lb_settings(cluster, kind), said_by=said_by, dry_run=dry_run
    )
    if json_out:
        print_json(
            {
                "path": str(result.path),
                "installer": result.kind,
                "changed": result.changed,
                "written": result.written,
                "backup": str(result.backup) if result.backup else None,
                "diff": result.diff,
                "warnings": list(result.warnings),
            }
        )
        return
    for w in result.warnings:
        warn(w)
    if result.diff and (diff or dry_run):
        typer.echo(result.diff, nl=False)
    name = one_line(str(target))
    if not result.changed:
        out().print(f"{name}: unchanged (already up to date)")
    elif not result.written:
        out().print(f"{name}: would change (dry run, nothing written)")
    else:
        out().print(f"{name}: updated (backup: {one_line(str(result.backup))})")


@app.command("install")
def install_cmd(
    config: ConfigOption = DEFAULT_CONFIG,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Log file (default: halb-install-TIME.log by halb.yaml)."),
    ] = None,
    no_probe: Annotated[
        bool,
        typer.Option(
            "--no-probe", help="Do not probe the console through the external VIP at the end."
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Launch the installer as its docs do, answer its prompts, judge how it ended.

    Exit 0 when the installer says it succeeded, 1 when it failed or waited for an answer
    halb does not have (the stage and the log line that says why), 130 on Ctrl-C.
    """
    from halb.errors import ExitStatus
    from halb.installers.report import install, print_report, result_document
    from halb.installers.runner import default_log_path
    from halb.spec import load_cluster

    cluster = load_cluster(config)
    log_path = log if log is not None else default_log_path(cluster.base_dir)
    console = err() if json_out else out()
    done = install(
        cluster, log_path, console, lambda m: console.print(one_line(m, 2000)), probe=not no_probe
    )
    result = done.result
    if json_out:
        print_json(result_document(result, done.console_url, done.console_answer))
    else:
        print_report(console, result, vip_url=done.console_url, vip_answer=done.console_answer)
    done.raise_if_interrupted()
    exit_with(ExitStatus.OK if result.verdict.ok else ExitStatus.CHECK_FAILED)
