"""CLI command: test-failover (the drill)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from halb.cli.common import DEFAULT_CONFIG, ConfigOption, app, err, exit_with, out
from halb.drill import report as rp
from halb.drill.fault_kinds import ALL_FAULTS, GROUPS
from halb.drill.model import FAULTS, RoundRecord
from halb.errors import ExitStatus, InputError
from halb.files import atomic_write

FAULT_CHOICES = (*FAULTS, *GROUPS, "all")


def parse_faults(value: str) -> tuple[str, ...]:
    """`all`, one fault, or a comma-separated list."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise InputError(f"--fault: give one of {', '.join(FAULT_CHOICES)}")
    if "all" in names:
        return ALL_FAULTS
    names = [g for n in names for g in GROUPS.get(n, (n,))]
    bad = [n for n in names if n not in FAULTS]
    if bad:
        raise InputError(f"--fault {bad[0]!r}: unknown fault (valid: {', '.join(FAULT_CHOICES)})")
    return tuple(dict.fromkeys(names))


def check_args(
    rounds: int,
    rate: float,
    timeout: float,
    max_outage: float | None,
    max_failback_failed: int | None = None,
) -> None:
    if rounds < 1 or rounds > 1000:
        raise InputError(f"--rounds {rounds}: must be 1..1000")
    if not 1 <= rate <= 1000:
        raise InputError(f"--rate {rate:g}: probes per second per frontend must be 1..1000")
    if not 0.01 <= timeout <= 10:
        raise InputError(f"--timeout {timeout:g}: seconds per probe must be 0.01..10")
    if max_outage is not None and not max_outage > 0:
        raise InputError(f"--max-outage {max_outage:g}: must be a positive number of seconds")
    if max_failback_failed is not None and max_failback_failed < 0:
        raise InputError(
            f"--max-failback-failed {max_failback_failed}: must be a number of requests, 0 or more"
        )


def check_out_path(opt: str, path: Path | None) -> None:
    if path is not None and not path.parent.resolve().is_dir():
        raise InputError(f"{opt} {path}: folder {path.parent} does not exist")


def _print_table(rows: list[rp.Row]) -> None:
    t = Table(title="halb test-failover (seconds)")
    for col in rp.table_header(rows):
        t.add_column(col, justify="left" if col in ("fault", "frontend", "family") else "right")
    for cells in rp.table_lines(rows):
        t.add_row(*cells)
    con = out()
    if not con.is_terminal:
        con.width = 160  # the whole table in logs and pipes
    con.print(t)


def _round_line(f: rp.RoundFigures) -> str:
    outage = ", ".join(f"{fe} {v:.3f}" for fe, v in f.outage_s.items())
    second = ", ".join(f"{fe} {v:.3f}" for fe, v in f.second_outage_s.items())
    failed = ", ".join(
        f"{fe} {v} ({f.outage_failed[fe]} in the outage, {f.failback_failed[fe]} in the failback)"
        for fe, v in f.failed.items()
    )
    back = "-" if f.failback_s is None else f"{f.failback_s:.3f} s"
    take = "-" if f.takeover_s is None else f"{f.takeover_s:.3f} s by {f.new_holder}"
    old = "" if f.old_holder_answers is None else f"; old holder answered {f.old_holder_answers}"
    most = max(f.max_holders.values(), default=0)
    # every lane over IPv6: every VIP is, and the first one's takeover is its NA
    by = "NA" if f.ipv6_lanes and set(f.ipv6_lanes) == set(f.outage_s) else "GARP"
    six = "".join(f"; {_ipv6_times(name, v)}" for name, v in f.ipv6_vips.items())
    return (
        f"{f.fault} #{f.index} on {f.target}: takeover {by} {take}; outage {outage}; "
        f"second {second}; failed {failed}{old}; most holders at once {most}; "
        f"old holder's {by} after the restore {back}{six}"
    )


def _ipv6_times(name: str, v: rp.VipTimes) -> str:
    take = "-" if v.takeover_s is None else f"{v.takeover_s:.3f} s by {v.new_holder}"
    back = "-" if v.failback_s is None else f"{v.failback_s:.3f} s"
    return f"{name} takeover NA {take}, old holder's NA after the restore {back}"


@app.command("test-failover")
def test_failover(
    config: ConfigOption = DEFAULT_CONFIG,
    fault: Annotated[
        str, typer.Option("--fault", help=f"One of {', '.join(FAULT_CHOICES)}, or a list.")
    ] = "graceful",
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds per fault.")] = 1,
    rate: Annotated[
        float, typer.Option("--rate", help="Probes per second per frontend (1/rate = resolution).")
    ] = 100.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per probe.")] = 0.5,
    max_outage: Annotated[
        float | None,
        typer.Option("--max-outage", help="Exit 1 when a client-visible outage exceeds this (s)."),
    ] = None,
    max_failback_failed: Annotated[
        int | None,
        typer.Option(
            "--max-failback-failed",
            help="Exit 1 when a round's failback (restore..end) loses more requests than this.",
        ),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write every timestamp and figure here.")
    ] = None,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG timeline of the rounds here.")
    ] = None,
) -> None:
    """Failover drill: inject faults on the VIP holder and measure what clients see."""
    from halb.drill.run import Drill, Settings
    from halb.spec import load_cluster

    faults = parse_faults(fault)
    check_args(rounds, rate, timeout, max_outage, max_failback_failed)
    check_out_path("--json", json_file)
    check_out_path("--plot", plot_file)
    cluster = load_cluster(config)
    settings = Settings(faults, rounds, rate, timeout, max_outage, max_failback_failed)
    say = err().print
    drill = Drill(cluster, settings, say=say)
    records: list[RoundRecord] = []
    figs: list[rp.RoundFigures] = []
    try:
        drill.preflight()
        for name in faults:
            for i in range(1, rounds + 1):
                rec = drill.run_round(name, i)
                records.append(rec)
                figs.append(rp.figures(rec))
                out().print(_round_line(figs[-1]))
    finally:
        drill.close()
        if records:
            problems = rp.violations(figs, max_outage, max_failback_failed)
            _write_outputs(records, figs, settings.as_dict(), problems, json_file, plot_file)
    _print_table(rp.table(figs))
    problems = rp.violations(figs, max_outage, max_failback_failed)
    for p in problems:
        err().print(f"FAILED: {p}")
    if problems:
        exit_with(ExitStatus.CHECK_FAILED)


def _write_outputs(
    records: list[RoundRecord],
    figs: list[rp.RoundFigures],
    settings: dict[str, object],
    problems: list[str],
    json_file: Path | None,
    plot_file: Path | None,
) -> None:
    if json_file is not None:
        doc = rp.document(records, figs, dict(settings), problems)
        atomic_write(json_file, (json.dumps(doc, separators=(",", ":")) + "\n").encode())
    if plot_file is not None:
        from halb.drill.plot import timeline_png

        atomic_write(plot_file, timeline_png(records, figs))
