"""CLI messages print text as text: markup and emoji codes in names never change, control
characters show escaped, one error is one line of bounded length, Ctrl-C is exit 130."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from halb.cli import app
from halb.cli.common import MAX_LINE, error_lines, one_line
from halb.errors import ExitStatus, InputError, Interrupted, SpecError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
runner = CliRunner()
HOSTILE_NAMES = [
    ":x:",
    ":thumbs_up: ok",
    "[bold]b[/bold]",
    "[begin:end:step]",
    "[red]:fire:[/]",
    "[link=file:///etc/passwd]x[/link]",
    "\\[bold]",
]


def test_one_line_escapes_control_characters_and_clips() -> None:
    assert one_line("a\nb\rc\x1b[31md\te") == "a\\nb\\rc\\x1b[31md\\te"
    assert one_line("bidi\u202eevil") == "bidi\\u202eevil"
    assert one_line("plain [bold] :x: ünïcode") == "plain [bold] :x: ünïcode"
    huge = one_line("head " + "v" * 1_000_000 + " tail")
    assert len(huge) < MAX_LINE + 60
    assert huge.startswith("head vvv") and huge.endswith("vvv tail")
    assert f"...({1_000_010 - MAX_LINE} characters left out)..." in huge


def test_error_lines_one_per_finding_and_bounded() -> None:
    class Finding:
        def __init__(self, level: str, text: str) -> None:
            self.level, self.text = level, text

        def __str__(self) -> str:
            return self.text

    class Many(InputError):
        findings = [Finding("error", f"e{i}\ninjected") for i in range(30)] + [
            Finding("warning", "w")
        ]

    lines = error_lines(Many("ignored"))
    assert len(lines) == 20 and lines[0] == "e0\\ninjected"
    assert lines[-1] == "... and 11 more errors"
    assert "characters left out" in error_lines(InputError("x" * 10_000))[0]


def test_ctrl_c_is_the_interrupted_error() -> None:
    assert Interrupted.exit_status == ExitStatus.INTERRUPTED == 130
    from halb.cli.common import _Group

    t = typer.Typer(cls=_Group)

    @t.callback()
    def root() -> None:
        pass

    @t.command()
    def command() -> None:
        raise KeyboardInterrupt

    r = runner.invoke(t, ["command"])
    assert r.exit_code == 130
    assert r.stderr.strip() == "error: interrupted"


def spec_file(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "hosts.ini", tmp_path / "hosts.ini")
    spec = tmp_path / "halb.yaml"
    spec.write_text(
        "cluster: test-ha\ninventory: hosts.ini\n"
        "vips:\n  internal: {address: 10.77.0.253, interface: eth0}\n"
    )
    return spec


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_names_print_as_written(tmp_path: Path, name: str) -> None:
    spec = spec_file(tmp_path)
    fname = name.replace("/", "|")  # a file name holds no slash
    # An error naming a missing file.
    missing = tmp_path / f"{fname}.yml"
    r = runner.invoke(
        app, ["write-config", "-c", str(spec), "--installer", "kubespray", str(missing)]
    )
    assert r.exit_code == 2
    assert r.stderr == f"error: {missing}: config file not found\n"
    # A success naming a real file.
    target = tmp_path / f"real {fname}.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", target)
    r = runner.invoke(app, ["write-config", "-c", str(spec), str(target)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{target}: updated (backup: {target}.halb-bak-")
    # A value in an error.
    r = runner.invoke(app, ["write-config", "-c", str(spec), "--installer", name, str(target)])
    assert r.exit_code == 2
    assert (
        r.stderr == f"error: --installer {name}: expected one of kubesphere, kubekey, kubespray\n"
    )


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    missing = tmp_path / "a\nerror: forged line\x1b[2J.yml"
    r = runner.invoke(app, ["write-config", "-c", str(spec), str(missing)])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "\x1b" not in r.stderr
    assert "a\\nerror: forged line\\x1b[2J.yml" in r.stderr


def test_a_megabyte_value_is_not_echoed(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    r = runner.invoke(app, ["write-config", "-c", str(spec), "--installer", "k" * 1_000_000, "x"])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and len(r.stderr) < MAX_LINE + 60
    assert "characters left out" in r.stderr


@pytest.mark.timeout(30)
def test_ctrl_c_during_install_exits_130(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    spec.write_text(
        spec.read_text() + "installer: {kind: command, command: 'kill -INT $PPID; sleep 0.3'}\n"
    )
    # The installer sends SIGINT to halb itself, as a terminal's Ctrl-C would.
    r = subprocess.run(
        [sys.executable, "-c", "from halb.cli import main; main()", "install", "-c", str(spec)],
        capture_output=True,
        text=True,
        timeout=25,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "error: interrupted: the installer and its children were stopped"
    )
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["write-config", "--bogus"], "No such option: --bogus"),
        (["write-config", "--:x:[bold]"], "No such option: --:x:[bold]"),
        (["write-config", "--installer"], "Option '--installer' requires an argument."),
        (["no-such-command"], "No such command 'no-such-command'."),
        (["probe", "--json", "extra", "args"], "Got unexpected extra argument"),
    ],
)
def test_usage_errors_are_one_line_too(args: list[str], message: str) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {message}")
    assert r.stdout == ""


def test_no_arguments_still_shows_the_help() -> None:
    r = runner.invoke(app, [])
    assert r.exit_code == 2
    assert "write-config" in r.stdout + r.stderr and "error:" not in r.stderr


def test_an_error_that_escaped_its_command_is_still_one_line() -> None:
    from halb.cli.common import _Group

    t = typer.Typer(cls=_Group)

    @t.callback()
    def root() -> None:
        pass

    @t.command()
    def unwrapped() -> None:
        raise InputError("spec.yaml: key [bold]:x: is wrong")

    r = runner.invoke(t, ["unwrapped"])
    assert r.exit_code == 2
    assert r.stderr == "error: spec.yaml: key [bold]:x: is wrong\n"


def test_traceback_flag_lets_the_error_through_for_that_run_only(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    r = runner.invoke(app, ["--traceback", "validate", "-c", str(missing)])
    assert isinstance(r.exception, SpecError) and "absent.yaml" in str(r.exception)
    # the flag lives in that run's context: the next run prints the one line again
    r = runner.invoke(app, ["validate", "-c", str(missing)])
    assert r.exit_code == 2 and not isinstance(r.exception, SpecError)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_traceback_flag_reaches_an_error_that_escaped_its_command() -> None:
    from halb.cli.common import _Group, set_traceback

    t = typer.Typer(cls=_Group)

    @t.callback()
    def root(ctx: typer.Context, traceback: bool = False) -> None:
        set_traceback(ctx, traceback)

    @t.command()
    def unwrapped() -> None:
        raise InputError("spec.yaml: wrong")

    assert isinstance(runner.invoke(t, ["--traceback", "unwrapped"]).exception, InputError)
    assert runner.invoke(t, ["unwrapped"]).exit_code == 2
