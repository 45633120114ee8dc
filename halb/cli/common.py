"""Shared CLI plumbing: the typer app, common options, error-to-exit-status mapping."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from halb.errors import ExitStatus, HalbError

app = typer.Typer(
    name="halb",
    help="HA control-plane endpoint (HAProxy + keepalived VIP) for on-prem Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Cluster spec file.", show_default=True)
]
DEFAULT_CONFIG = Path("halb.yaml")
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document for scripts.")]

P = ParamSpec("P")
R = TypeVar("R")

_state = {"traceback": False}


def set_traceback(value: bool) -> None:
    _state["traceback"] = value


def out() -> Console:
    """stdout; markup only where a caller passes markup=True."""
    return Console(highlight=False, soft_wrap=True, markup=False)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn HalbError into one line on stderr and its exit status; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except HalbError as e:
            if _state["traceback"]:
                raise
            err().print(f"[bold red]error:[/] {escape(str(e))}", markup=True)
            raise typer.Exit(int(e.exit_status)) from None
        except KeyboardInterrupt:
            err().print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def exit_with(status: ExitStatus) -> None:
    if status != ExitStatus.OK:
        raise typer.Exit(int(status))
