"""The halb command line. Each area registers its commands on the shared app."""

from __future__ import annotations

from typing import Annotated

import typer

from halb import __version__
from halb.cli.common import app, set_traceback
from halb.errors import ExitStatus


def _version(value: bool) -> None:
    if value:
        typer.echo(f"halb {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show Python tracebacks (for developers).")
    ] = False,
) -> None:
    set_traceback(ctx, traceback)
    if ctx.invoked_subcommand is None:  # `halb` alone: the help, and exit 2 as for no command
        typer.echo(ctx.get_help())
        raise typer.Exit(int(ExitStatus.BAD_INPUT))


# Importing a module registers its commands.
from halb.cli import core as _core  # noqa: E402,F401
from halb.cli import deploy as _deploy  # noqa: E402,F401
from halb.cli import drain as _drain  # noqa: E402,F401
from halb.cli import drill as _drill  # noqa: E402,F401
from halb.cli import export as _export  # noqa: E402,F401
from halb.cli import installer as _installer  # noqa: E402,F401
from halb.cli import lab as _lab  # noqa: E402,F401
from halb.cli import preflight as _preflight  # noqa: E402,F401
from halb.cli import probe as _probe  # noqa: E402,F401
from halb.cli import status as _status  # noqa: E402,F401
from halb.cli import up as _up  # noqa: E402,F401


def main() -> None:
    app()
