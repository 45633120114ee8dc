"""Shared CLI plumbing: the typer app, common options, error-to-exit-status mapping."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from halb.errors import ExitStatus, HalbError, Interrupted

# re-exported: the CLI modules print through these
from halb.kinds import MAX_LINE as MAX_LINE
from halb.kinds import one_line as one_line
from halb.kinds import redact


class _Group(TyperGroup):
    """The one place where errors become messages and exit statuses.

    `invoke` runs every command: a HalbError prints as one line (several for an error
    that lists findings) and exits with its status, Ctrl-C exits 130, nothing prints a
    traceback unless --traceback. `main` does the same for usage errors (an unknown
    option, a missing value), which click raises before any command runs.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:  # Ctrl-C or end of input at a prompt
            print_error(Interrupted("interrupted"))
            sys.exit(int(ExitStatus.INTERRUPTED))
        except Exception as e:
            # click's usage errors (its own UsageError family) carry both of these
            code, message = getattr(e, "exit_code", None), getattr(e, "format_message", None)
            if not isinstance(code, int) or not callable(message):
                raise
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            print_error(Exception(f"{message()}{hint}"))
            sys.exit(code)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: Any) -> Any:  # typer's Context (its click is vendored since 0.2x)
        try:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                raise Interrupted("interrupted") from None
        except HalbError as e:
            if ctx.meta.get(TRACEBACK_KEY, False):
                raise
            print_error(e)
            raise typer.Exit(int(e.exit_status)) from None


app = typer.Typer(
    name="halb",
    cls=_Group,
    help="HA control-plane endpoint (HAProxy + keepalived VIP) for on-prem Kubernetes.",
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Cluster spec file.", show_default=True)
]
DEFAULT_CONFIG = Path("halb.yaml")
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document for scripts.")]

P = ParamSpec("P")
R = TypeVar("R")

# ctx.meta is one dict shared by the root context and every subcommand's context.
TRACEBACK_KEY = "halb.traceback"


def set_traceback(ctx: typer.Context, value: bool) -> None:
    ctx.meta[TRACEBACK_KEY] = value


MAX_LINES = 20  # lines of one error that lists several findings


def out() -> Console:
    """stdout. Text prints as text: no markup or emoji codes unless a caller asks for
    markup=True (and escapes what it interpolates); emoji codes never."""
    return Console(highlight=False, soft_wrap=True, markup=False, emoji=False)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def error_lines(e: BaseException) -> list[str]:
    """One line per error: an error that lists findings gives one line each."""
    findings = getattr(e, "findings", None)
    if findings:
        lines = [str(f) for f in findings if getattr(f, "level", "error") == "error"]
    else:
        lines = [str(e)]
    # redact: a message built anywhere may quote a `password=...` word of a user's file
    lines = [one_line(redact(line)) for line in lines] or [one_line(redact(str(e)))]
    if len(lines) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"... and {len(lines) - MAX_LINES + 1} more errors"]
    return lines


def print_error(e: BaseException, label: str = "error") -> None:
    console = err()
    for line in error_lines(e):
        console.print(Text.assemble((f"{label}:", "bold red"), " ", line))


def warn(message: str, console: Console | None = None) -> None:
    (console or err()).print(Text.assemble(("warning:", "yellow"), " ", one_line(redact(message))))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def exit_with(status: ExitStatus) -> None:
    """How every command ends with a status other than success (errors raise HalbError)."""
    if status != ExitStatus.OK:
        raise typer.Exit(int(status))
