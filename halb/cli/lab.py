"""CLI commands: lab (`halb lab up|down|status|exec`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from halb.cli.common import JsonOption, app, handle_errors, out, print_json
from halb.errors import InputError

lab_app = typer.Typer(
    name="lab",
    help="A lab of real hosts in network namespaces on this machine.",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

NameOption = Annotated[
    str | None,
    typer.Option("--name", help="Lab name (default: the lab in --dir, the only lab, or halb)."),
]
DirOption = Annotated[Path, typer.Option("--dir", help="Lab directory (files and state).")]
DEFAULT_DIR = Path("lab")


@lab_app.command("up")
@handle_errors
def lab_up(
    lbs: Annotated[int, typer.Option("--lbs", help="LB hosts.")] = 2,
    masters: Annotated[int, typer.Option("--masters", help="Masters (fake apiserver).")] = 3,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes (fake console).")] = 3,
    name: Annotated[str, typer.Option("--name", help="Lab name.")] = "halb",
    dir: DirOption = DEFAULT_DIR,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="plain: LB daemons under halb's supervisor (quick). systemd: LB hosts boot "
            "systemd in a private root, start without HAProxy/keepalived, and get them from "
            "`halb deploy` through apt.",
        ),
    ] = "plain",
) -> None:
    """Build the lab: switch, taskbox, LB hosts, masters, nodes; write hosts.ini and halb.yaml."""
    from halb.lab import up
    from halb.lab.topology import Init
    from halb.lab.writer import next_steps

    valid = [i.value for i in Init]
    if init not in valid:
        raise InputError(f"--init {init!r}: use one of {', '.join(valid)}")
    console = out()
    t0 = time.monotonic()
    lab = up(
        name, dir, lbs, masters, nodes, init=Init(init),
        progress=lambda m: console.print(f"lab {name}: {m}"),
    )  # fmt: skip
    console.print(f"lab {name}: up in {time.monotonic() - t0:.1f} s")
    console.print(next_steps(lab.plan, lab.dir), end="")


@lab_app.command("down")
@handle_errors
def lab_down(name: NameOption = None, dir: DirOption = DEFAULT_DIR) -> None:
    """Remove the lab: processes, mounts, namespaces, files. Safe to run twice."""
    from halb.lab.discover import resolve_name
    from halb.lab.netns import require_root
    from halb.lab.teardown import down

    require_root()
    lab_name = resolve_name(name, dir)
    steps = down(lab_name, dir)
    console = out()
    for s in steps:
        console.print(f"lab {lab_name}: {s}")
    console.print(f"lab {lab_name}: down" + ("" if steps else " (nothing was left)"))


@lab_app.command("status")
@handle_errors
def lab_status(name: NameOption = None, json: JsonOption = False) -> None:
    """Namespaces, addresses, daemons of every host, and who holds the VIPs."""
    from halb.lab.discover import status
    from halb.lab.netns import require_root

    require_root()
    report = status(name)
    if json:
        print_json(report)
        return
    console = out()
    if not report:
        console.print("no lab is running" + (f" with the name {name}" if name else ""))
        return
    for lab in report:
        _print_lab(console, lab)


def _print_lab(console: Console, lab: dict[str, Any]) -> None:
    console.print(f"lab {lab['name']}  {lab['subnet']}")
    for h in lab["hosts"]:
        if h["host"] == "sw":
            console.print(f"  {'sw':<9} {h['netns']:<22} (switch)")
            continue
        extra = f"  +{','.join(h['extra_addresses'])}" if h["extra_addresses"] else ""
        daemons = " ".join(h["daemons"]) or "-"
        if h.get("init") == "systemd":
            daemons = f"[systemd host] {daemons}"
        console.print(
            f"  {h['host']:<9} {h['netns']:<22} {h['address'] or '-':<15} {daemons}{extra}"
        )
    for v in lab["vips"]:
        holders = ", ".join(v["holders"]) or "nobody"
        console.print(f"  VIP {v['role']:<8} {v['address']:<15} held by {holders}")


@lab_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handle_errors
def lab_exec(
    cmd: Annotated[list[str], typer.Argument(help="Command to run (after --).")],
    name: NameOption = None,
    host: Annotated[str, typer.Option("--host", help="Host to run in.")] = "taskbox",
    dir: DirOption = DEFAULT_DIR,
) -> None:
    """Run a command inside the taskbox (default) or a lab host; exits with its status."""
    from halb.lab.discover import enter_argv, resolve_name
    from halb.lab.netns import require_root

    require_root()
    if not cmd:
        raise InputError("halb lab exec: give a command after --")
    argv = [*enter_argv(resolve_name(name, dir), host, dir), *cmd]
    os.execvp(argv[0], argv)  # stdio, signals and exit status pass straight through
