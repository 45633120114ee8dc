"""Launching the installer: real harmless commands, live output, log, exit code passthrough."""

from __future__ import annotations

import io
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from halb.errors import InputError
from halb.installers.launch import (
    KUBEKEY_ANSWER,
    KUBESPHERE_ANSWER,
    LaunchPlan,
    default_log_path,
    plan_launch,
    run_installer,
)


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, force_terminal=False, color_system=None), buf


def test_output_is_logged_and_exit_code_passed_through(tmp_path: Path) -> None:
    plan = plan_launch("command", tmp_path, None, "echo one; echo two >&2; exit 3")
    log = tmp_path / "install.log"
    con, buf = console()
    code = run_installer(plan, log, con, console_url="http://192.168.0.254:30880")
    assert code == 3
    text = log.read_text()
    assert "one\ntwo\n" in text
    assert text.rstrip().endswith("# exit code 3 after 0 s")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    out = buf.getvalue()
    assert "one\ntwo\n" in out
    assert "exit code 3" in out
    assert "192.168.0.254:30880" not in out  # the URL only after a successful install


def test_success_prints_the_console_url(tmp_path: Path) -> None:
    plan = plan_launch("command", tmp_path, None, "pwd")
    con, buf = console()
    code = run_installer(plan, tmp_path / "l.log", con, console_url="http://192.168.0.254:30880")
    assert code == 0
    assert str(tmp_path) in (tmp_path / "l.log").read_text()  # ran in the halb.yaml folder
    assert "http://192.168.0.254:30880" in buf.getvalue()


def test_lines_stream_before_the_command_ends(tmp_path: Path) -> None:
    # The command waits until the log shows its first line: only live streaming lets it finish.
    log = tmp_path / "live.log"
    script = (
        f"echo first; for i in $(seq 50); do grep -q first {log} && echo seen && exit 0; "
        "sleep 0.1; done; echo not-streamed; exit 1"
    )
    con, _ = console()
    code = run_installer(plan_launch("command", tmp_path, None, script), log, con, tick=0.05)
    assert code == 0
    assert "first\nseen\n" in log.read_text()


def test_answers_go_to_stdin_and_a_prompt_without_newline_is_kept(tmp_path: Path) -> None:
    script = 'printf "Please input an option: "; read choice; echo "mode $choice"'
    plan = plan_launch("command", tmp_path, None, script, answer="2")
    assert plan.stdin_text == "2\n"
    con, _ = console()
    assert run_installer(plan, tmp_path / "a.log", con) == 0
    assert "Please input an option: mode 2\n" in (tmp_path / "a.log").read_text()


def test_partial_last_line_is_logged(tmp_path: Path) -> None:
    con, buf = console()
    plan = plan_launch("command", tmp_path, None, "printf 'no newline'")
    assert run_installer(plan, tmp_path / "p.log", con) == 0
    assert "no newline\n" in (tmp_path / "p.log").read_text()
    assert "no newline" in buf.getvalue()


def test_signal_exit_maps_to_128_plus_n(tmp_path: Path) -> None:
    con, _ = console()
    plan = plan_launch("command", tmp_path, None, "kill -TERM $$")
    assert run_installer(plan, tmp_path / "s.log", con) == 128 + 15


def test_existing_log_is_truncated_and_made_private(tmp_path: Path) -> None:
    log = tmp_path / "old.log"
    log.write_text("old secret\n")
    log.chmod(0o644)
    con, _ = console()
    run_installer(plan_launch("command", tmp_path, None, "true"), log, con)
    assert "old secret" not in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.timeout(10)
def test_log_is_never_written_through_a_symlink_or_into_a_fifo(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    link = tmp_path / "halb-install.log"
    link.symlink_to(victim)
    con, _ = console()
    plan = plan_launch("command", tmp_path, None, "echo ran > ran.txt")
    with pytest.raises(InputError, match=r"halb-install\.log: cannot write the install log: a sym"):
        run_installer(plan, link, con)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"fifo\.log: cannot write the install log"):
        run_installer(plan, fifo, con)
    assert victim.read_text() == "keep\n"
    assert not (tmp_path / "ran.txt").exists()  # nothing ran without its log


def test_missing_program_is_input_error(tmp_path: Path) -> None:
    con, _ = console()
    plan = LaunchPlan(("halb-no-such-installer",), tmp_path)
    with pytest.raises(InputError, match="halb-no-such-installer"):
        run_installer(plan, tmp_path / "m.log", con)
    assert "cannot start" in (tmp_path / "m.log").read_text()


def test_kubesphere_plan_runs_the_script_from_the_installer_folder(tmp_path: Path) -> None:
    (tmp_path / "ks" / "scripts").mkdir(parents=True)
    (tmp_path / "ks" / "conf").mkdir()
    script = tmp_path / "ks" / "scripts" / "install.sh"
    script.write_text('read mode; echo "mode=$mode cwd=$(pwd)"\n')
    plan = plan_launch("kubesphere", tmp_path, Path("ks/conf/common.yaml"), None)
    assert plan == LaunchPlan(("bash", "./scripts/install.sh"), tmp_path / "ks", KUBESPHERE_ANSWER)
    con, _ = console()
    assert run_installer(plan, tmp_path / "k.log", con) == 0
    assert f"mode=2 cwd={tmp_path / 'ks'}" in (tmp_path / "k.log").read_text()


def test_kubesphere_without_script_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"scripts/install\.sh"):
        plan_launch("kubesphere", tmp_path, Path("conf/common.yaml"), None)


def test_command_wins_over_the_kind_and_keeps_its_answers(tmp_path: Path) -> None:
    plan = plan_launch("kubesphere", tmp_path, Path("conf/common.yaml"), "./scripts/install.sh")
    assert plan == LaunchPlan(("bash", "-c", "./scripts/install.sh"), tmp_path, KUBESPHERE_ANSWER)
    plan = plan_launch("command", tmp_path, None, "make install")
    assert plan == LaunchPlan(("bash", "-c", "make install"), tmp_path, None)


def test_kubekey_plan_prefers_the_local_kk(tmp_path: Path) -> None:
    plan = plan_launch("kubekey", tmp_path, Path("config.yaml"), None)
    assert plan == LaunchPlan(
        ("kk", "create", "cluster", "-f", "config.yaml"), tmp_path, KUBEKEY_ANSWER
    )
    kk = tmp_path / "kk"
    kk.write_text("#!/bin/sh\n")
    kk.chmod(0o755)
    assert plan_launch("kubekey", tmp_path, Path("config.yaml"), None).argv[0] == "./kk"


def test_kubespray_plan_finds_checkout_and_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "kubespray" / "inventory" / "mycluster"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yaml").write_text("all: {}\n")
    (tmp_path / "kubespray" / "cluster.yml").write_text("[]\n")
    cfg = Path("kubespray/inventory/mycluster/group_vars/all/all.yml")
    plan = plan_launch("kubespray", tmp_path, cfg, None)
    assert plan.argv == (
        "ansible-playbook",
        "-i",
        "inventory/mycluster/hosts.yaml",
        "cluster.yml",
        "-b",
    )
    assert plan.cwd == tmp_path / "kubespray"


def test_kubespray_without_inventory_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "inv" / "group_vars" / "all").mkdir(parents=True)
    with pytest.raises(InputError, match="no inventory file"):
        plan_launch("kubespray", tmp_path, Path("inv/group_vars/all/all.yml"), None)


def test_default_log_path_is_next_to_halb_yaml(tmp_path: Path) -> None:
    assert default_log_path(tmp_path, datetime(2024, 1, 2, 3, 4, 5)) == (
        tmp_path / "halb-install-20240102-030405.log"
    )
