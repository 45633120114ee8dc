"""CLI commands: lab (`halb lab up|down|status|exec`)."""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from halb.cli.common import JsonOption, app, exit_with, out, print_json
from halb.errors import ExitStatus, InputError

if TYPE_CHECKING:
    from halb.lab.vm_lab import Sizes

lab_app = typer.Typer(
    name="lab",
    help="A lab of real hosts: network namespaces on this machine, or Vagrant VMs.",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

NameOption = Annotated[
    str | None,
    typer.Option("--name", help="Lab name (default: the lab in --dir, the only lab, or halb)."),
]
DirOption = Annotated[Path, typer.Option("--dir", help="Lab directory (files and state).")]
DEFAULT_DIR = Path("lab")


class Provider(StrEnum):
    netns = "netns"
    vagrant = "vagrant"


ProviderOption = Annotated[
    Provider,
    typer.Option("--provider", help="netns: namespaces on this machine; vagrant: VMs (vagrant/)."),
]
VagrantDirOption = Annotated[
    Path | None,
    typer.Option(
        "--vagrant-dir",
        help="vagrant: the folder with the Vagrantfile (default: the one `lab up` used, "
        "else the one shipped with halb).",
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=1, help="vagrant: seconds before vagrant is stopped."),
]


def _no_vagrant_options(vagrant_dir: Path | None, timeout: float | None = None) -> None:
    if vagrant_dir is not None or timeout is not None:
        raise InputError("--vagrant-dir and --timeout are for --provider vagrant")


@lab_app.command("up")
def lab_up(
    lbs: Annotated[
        int | None,
        typer.Option("--lbs", help="LB hosts [default: 2; 0: the masters carry the VIP]."),
    ] = None,
    masters: Annotated[
        int | None,
        typer.Option("--masters", help="Masters (fake apiserver) [default: 3, VMs 1]."),
    ] = None,
    nodes: Annotated[
        int | None, typer.Option("--nodes", help="Nodes (fake console) [default: 3, VMs 1].")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Lab name.")] = "halb",
    dir: DirOption = DEFAULT_DIR,
    provider: ProviderOption = Provider.netns,
    vagrant_dir: VagrantDirOption = None,
    timeout: TimeoutOption = None,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="plain: daemons under halb's supervisor (quick). systemd: every host boots "
            "systemd in a private root (stand-ins as units on masters and nodes); LB hosts "
            "start without HAProxy/keepalived and get them from `halb deploy` through apt.",
        ),
    ] = "plain",
    colocated: Annotated[
        bool,
        typer.Option(
            "--colocated",
            help="The KubeSphere guide's shape: no LB hosts (same as --lbs 0); the masters "
            "carry the VIP and run HAProxy beside the apiserver stand-in on 0.0.0.0:6443, and "
            "every master and node answers 30880 on every address, as a NodePort does.",
        ),
    ] = False,
    ip_family: Annotated[
        str,
        typer.Option(
            "--ip-family",
            help="4: IPv4 only. dual: every host also gets a unique-local IPv6 address "
            "(fd25:250:X::N/64, in the lab's namespaces only), ip6= in hosts.ini, and each "
            "VIP an address6.",
        ),
    ] = "4",
) -> None:
    """Build the lab: switch, taskbox, LB hosts, masters, nodes; write hosts.ini and halb.yaml."""
    if colocated:
        lbs = 0
    if provider is Provider.vagrant:
        if (name, init) != ("halb", "plain"):
            raise InputError("--name and --init are for the netns lab")
        if ip_family != "4":
            raise InputError("--ip-family is for the netns lab")
        from halb.lab.vm_lab import Sizes

        given = {"lbs": lbs, "masters": masters, "nodes": nodes}
        sizes = Sizes(**{k: v for k, v in given.items() if v is not None})
        _vagrant_up(dir, vagrant_dir, timeout, sizes)
        return
    _no_vagrant_options(vagrant_dir, timeout)
    lbs, masters, nodes = (2 if lbs is None else lbs, 3 if masters is None else masters,
                           3 if nodes is None else nodes)  # fmt: skip
    from halb.lab import up
    from halb.lab.topology import Init
    from halb.lab.writer import next_steps

    valid = [i.value for i in Init]
    if init not in valid:
        raise InputError(f"--init {init!r}: use one of {', '.join(valid)}")
    console = out()
    t0 = time.monotonic()
    lab = up(
        name, dir, lbs, masters, nodes, init=Init(init), ip_family=ip_family,
        progress=lambda m: console.print(f"lab {name}: {m}"),
    )  # fmt: skip
    console.print(f"lab {name}: up in {time.monotonic() - t0:.1f} s")
    console.print(next_steps(lab.plan, lab.dir), end="")


def _vagrant_up(dir: Path, vagrant_dir: Path | None, timeout: float | None, sizes: Sizes) -> None:
    from halb.lab import vagrant_run, vm_lab
    from halb.lab.vagrant import next_steps

    console = out()
    t0 = time.monotonic()

    def progress(m: str) -> None:
        console.print(f"lab vagrant: {m}", markup=False, highlight=False)

    if vm_lab.isolate_by_default(os.environ):
        from halb.lab.netns import require_root

        require_root()
        layout = vm_lab.up(dir, vagrant_dir, sizes, timeout or vagrant_run.UP_TIMEOUT, progress)
        isolated = True
    else:
        env = {**os.environ, **sizes.env()}
        layout = vagrant_run.up(dir, vagrant_dir, timeout or vagrant_run.UP_TIMEOUT, progress, env)
        isolated = False
    console.print(f"lab vagrant: up in {time.monotonic() - t0:.1f} s")
    console.print(next_steps(layout, dir, isolated), end="", markup=False)


@lab_app.command("box")
def lab_box(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build it again.")] = False,
) -> None:
    """Build the VM lab's Debian box once (cached in /var/cache/halb-lab/box)."""
    from halb.lab.netns import require_root
    from halb.lab.vm_boxbuild import ensure_box

    require_root()
    console = out()
    paths = ensure_box(lambda m: console.print(f"lab box: {m}"), rebuild=rebuild)
    console.print(f"lab box: {paths.box}")


@lab_app.command("down")
def lab_down(
    name: NameOption = None,
    dir: DirOption = DEFAULT_DIR,
    provider: ProviderOption = Provider.netns,
    vagrant_dir: VagrantDirOption = None,
    timeout: TimeoutOption = None,
) -> None:
    """Remove the lab: processes, mounts, namespaces, files (vagrant: destroy the VMs).
    Safe to run twice."""
    from halb.lab import vagrant_run

    console = out()
    if provider is Provider.vagrant:
        from halb.lab import vm_lab

        if vm_lab.is_isolated(dir):
            from halb.lab.netns import require_root

            require_root()
            vm_lab.down(dir, progress=lambda m: console.print(f"lab vagrant: {m}"))
            console.print("lab vagrant: down")
            return
        steps = vagrant_run.down(
            dir,
            vagrant_dir,
            timeout or vagrant_run.DOWN_TIMEOUT,
            progress=lambda m: console.print(f"lab vagrant: {m}"),
        )
        for s in steps:
            console.print(f"lab vagrant: {s}")
        console.print("lab vagrant: down")
        return
    _no_vagrant_options(vagrant_dir, timeout)
    if (dir / vagrant_run.STATE_FILE).is_file() and name is None:
        raise InputError(
            f"{dir} holds a Vagrant lab: take it down with "
            f"`halb lab down --provider vagrant --dir {dir}`"
        )
    from halb.lab.discover import resolve_name
    from halb.lab.netns import require_root
    from halb.lab.teardown import down

    require_root()
    lab_name = resolve_name(name, dir)
    steps = down(lab_name, dir)
    for s in steps:
        console.print(f"lab {lab_name}: {s}")
    console.print(f"lab {lab_name}: down" + ("" if steps else " (nothing was left)"))


@lab_app.command("status")
def lab_status(
    name: NameOption = None,
    json: JsonOption = False,
    provider: ProviderOption = Provider.netns,
    dir: Annotated[
        Path, typer.Option("--dir", help="vagrant: the lab directory `lab up` wrote.")
    ] = DEFAULT_DIR,
    vagrant_dir: VagrantDirOption = None,
) -> None:
    """Namespaces, addresses, daemons of every host, who holds the VIPs, and whether each
    host still sees its own private files (exit 1 if not); vagrant: the VMs and their states."""
    if provider is Provider.vagrant:
        _vagrant_status(dir, vagrant_dir, json)
        return
    _no_vagrant_options(vagrant_dir)
    from halb.lab.discover import status
    from halb.lab.netns import require_root

    require_root()
    report = status(name)
    if json:
        print_json(report)
    else:
        console = out()
        if not report:
            console.print("no lab is running" + (f" with the name {name}" if name else ""))
        for lab in report:
            _print_lab(console, lab)
    if not all(lab["isolated"] for lab in report):
        exit_with(ExitStatus.CHECK_FAILED)


def _vagrant_status(dir: Path, vagrant_dir: Path | None, json: bool) -> None:
    from dataclasses import asdict

    from halb.lab import vagrant_run, vm_lab

    isolated = vm_lab.is_isolated(dir)
    vms = vm_lab.status(dir, vagrant_dir) if isolated else vagrant_run.status(dir, vagrant_dir)
    if json:
        print_json({"provider": "vagrant", "vms": [asdict(v) for v in vms]})
        return
    console = out()
    if not vms and isolated:
        console.print(f"lab vagrant: not running in {dir} (no libvirtd in its namespace)")
        return
    if not vms:
        console.print("lab vagrant: the Vagrantfile defines no VMs")
        return
    console.print("lab vagrant")
    for v in vms:
        console.print(f"  {v.name:<9} {v.ip or '-':<15} {v.description:<12} ({v.provider})")


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
        if h["not_own_files"]:
            console.print(
                f"  {'':<9} ISOLATION GONE: {', '.join(h['not_own_files'])} "
                "would be the machine's, not the host's own"
            )
    for v in lab["vips"]:
        holders = ", ".join(v["holders"]) or "nobody"
        console.print(f"  VIP {v['role']:<8} {v['address']:<15} held by {holders}")


@lab_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def lab_exec(
    cmd: Annotated[list[str], typer.Argument(help="Command to run (after --).")],
    name: NameOption = None,
    host: Annotated[str, typer.Option("--host", help="Host to run in.")] = "taskbox",
    dir: DirOption = DEFAULT_DIR,
    provider: ProviderOption = Provider.netns,
) -> None:
    """Run a command inside the taskbox (default) or a lab host; exits with its status.
    Refuses (exit 1) a host that no longer sees its own private files.
    (vagrant: in the VM lab's namespaces, which reach the VMs' networks.)"""
    from halb.lab.discover import enter_argv, resolve_name
    from halb.lab.isolation import require_own
    from halb.lab.netns import require_root
    from halb.lab.topology import TASKBOX, netns_name

    require_root()
    if not cmd:
        raise InputError("halb lab exec: give a command after --")
    if provider is Provider.vagrant:
        from halb.lab import vm_lab

        argv = [*vm_lab.exec_argv(dir), *cmd]
        os.execvp(argv[0], argv)
    lab_name = resolve_name(name, dir)
    argv = [*enter_argv(lab_name, host, dir), *cmd]
    if host != TASKBOX:
        # never run a command in a host that would see the machine's files as its own
        require_own(lab_name, [(host, netns_name(lab_name, host))])
    os.execvp(argv[0], argv)  # stdio, signals and exit status pass straight through
