"""Launching the installer: where and how each kind runs, and the runner's log, live output
and exit codes, with real harmless commands on a real pty."""

from __future__ import annotations

import io
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from halb.errors import InputError
from halb.installers import facts
from halb.installers.launch import LaunchPlan, plan_launch
from halb.installers.runner import RunLimits, RunResult, default_log_path, run_installer
from halb.installers.watch import Outcome

FAST = RunLimits(tick=0.05, input_wait=2.0, stop_grace=2.0)


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, force_terminal=False, color_system=None), buf


def run(plan: LaunchPlan, log: Path, limits: RunLimits = FAST) -> tuple[RunResult, str]:
    con, buf = console()
    return run_installer(plan, log, con, limits=limits), buf.getvalue()


def test_output_is_logged_and_exit_code_kept(tmp_path: Path) -> None:
    plan = plan_launch("command", tmp_path, None, "echo one; echo two >&2; exit 3")
    log = tmp_path / "install.log"
    res, out = run(plan, log)
    assert res.verdict.exit_code == 3
    assert res.verdict.outcome is Outcome.FAILED
    assert "exit code 3" in res.verdict.why
    text = log.read_text()
    assert "one\ntwo\n" in text  # stderr too: both go to the installer's terminal
    assert "# exit code 3 after 0m00s: failed" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "one\ntwo\n" in out


def test_command_runs_in_the_halb_yaml_folder_and_succeeds_on_exit_0(tmp_path: Path) -> None:
    res, _ = run(plan_launch("command", tmp_path, None, "pwd"), tmp_path / "l.log")
    assert res.verdict.outcome is Outcome.SUCCEEDED
    assert str(tmp_path) in (tmp_path / "l.log").read_text()


def test_lines_stream_before_the_command_ends(tmp_path: Path) -> None:
    # The command waits until the log shows its first line: only live logging lets it end.
    log = tmp_path / "live.log"
    script = (
        f"echo first; for i in $(seq 50); do grep -q first {log} && echo seen && exit 0; "
        "sleep 0.1; done; echo not-streamed; exit 1"
    )
    res, _ = run(plan_launch("command", tmp_path, None, script), log)
    assert res.verdict.exit_code == 0
    assert "first\nseen\n" in log.read_text()


def test_the_installer_runs_on_a_terminal_in_a_session_of_its_own(tmp_path: Path) -> None:
    script = 'test -t 0 && test -t 1 && echo "tty $(tty)"; echo "sid $(ps -o sid= -p $$) pid $$"'
    res, _ = run(plan_launch("command", tmp_path, None, script), tmp_path / "t.log")
    text = (tmp_path / "t.log").read_text()
    assert "tty /dev/pts/" in text
    sid_pid = next(line.split() for line in text.splitlines() if line.startswith("sid "))
    assert sid_pid[1] == sid_pid[3]  # bash -c leads its session: stops reach its group
    assert res.verdict.ok


def test_partial_last_line_is_logged(tmp_path: Path) -> None:
    res, out = run(
        plan_launch("command", tmp_path, None, "printf 'no newline'"), tmp_path / "p.log"
    )
    assert res.verdict.ok
    assert "no newline\n" in (tmp_path / "p.log").read_text()
    assert "no newline" in out


def test_signal_exit_maps_to_128_plus_n(tmp_path: Path) -> None:
    res, _ = run(plan_launch("command", tmp_path, None, "kill -TERM $$"), tmp_path / "s.log")
    assert res.verdict.exit_code == 128 + 15
    assert not res.verdict.ok


def test_repeated_lines_are_collapsed_and_the_log_is_capped(tmp_path: Path) -> None:
    # 200 000 identical lines (a loop re-printing an empty answer) cost one line and a count.
    script = "yes '' | head -n 200000; echo done"
    res, _ = run(plan_launch("command", tmp_path, None, script), tmp_path / "r.log")
    text = (tmp_path / "r.log").read_text()
    assert "# (the line above repeated 199999 more times)" in text
    assert text.count("\n") < 20
    # Distinct lines past the cap: a count, then the last lines, nothing in between.
    script = "for i in $(seq 5000); do echo line-$i; done"
    limits = RunLimits(tick=0.05, log_cap=4000)
    res, _ = run(plan_launch("command", tmp_path, None, script), tmp_path / "c.log", limits)
    capped = (tmp_path / "c.log").read_text()
    assert "# log capped at 4000 bytes" in capped
    assert "line-5000\n" in capped and "line-2500\n" not in capped
    assert len(capped) < 4000 + 200 * 12 + 500
    assert res.verdict.ok


def test_existing_log_is_truncated_and_made_private(tmp_path: Path) -> None:
    log = tmp_path / "old.log"
    log.write_text("old secret\n")
    log.chmod(0o644)
    run(plan_launch("command", tmp_path, None, "true"), log)
    assert "old secret" not in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.timeout(10)
def test_log_is_never_written_through_a_symlink_or_into_a_fifo(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    link = tmp_path / "halb-install.log"
    link.symlink_to(victim)
    plan = plan_launch("command", tmp_path, None, "echo ran > ran.txt")
    with pytest.raises(InputError, match=r"halb-install\.log: cannot write the install log: a sym"):
        run(plan, link)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"fifo\.log: cannot write the install log"):
        run(plan, fifo)
    assert victim.read_text() == "keep\n"
    assert not (tmp_path / "ran.txt").exists()  # nothing ran without its log


def test_missing_program_is_input_error(tmp_path: Path) -> None:
    plan = LaunchPlan(("halb-no-such-installer",), tmp_path)
    with pytest.raises(InputError, match="halb-no-such-installer"):
        run(plan, tmp_path / "m.log")


def test_kubesphere_runs_multi_node_from_scripts(tmp_path: Path) -> None:
    # install.sh's os/install.tmp and os/precheck.py are relative to scripts/.
    (tmp_path / "ks" / "scripts").mkdir(parents=True)
    (tmp_path / "ks" / "conf").mkdir()
    (tmp_path / "ks" / "scripts" / "install.sh").write_text("#!/bin/bash\n")
    plan = plan_launch("kubesphere", tmp_path, Path("ks/conf/common.yaml"), None)
    assert plan == LaunchPlan(
        ("bash", "./install.sh", "multi-node"), tmp_path / "ks" / "scripts", facts.KUBESPHERE_21
    )


def test_kubesphere_without_script_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"scripts/install\.sh"):
        plan_launch("kubesphere", tmp_path, Path("conf/common.yaml"), None)


def test_command_wins_over_the_kind_and_keeps_its_facts(tmp_path: Path) -> None:
    plan = plan_launch("kubesphere", tmp_path, Path("conf/common.yaml"), "./scripts/install.sh")
    assert plan == LaunchPlan(("bash", "-c", "./scripts/install.sh"), tmp_path, facts.KUBESPHERE_21)
    plan = plan_launch("command", tmp_path, None, "make install")
    assert plan == LaunchPlan(("bash", "-c", "make install"), tmp_path, facts.COMMAND)


def test_kubekey_plan_says_yes_by_flag_and_prefers_the_local_kk(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\n"
    )
    plan = plan_launch("kubekey", tmp_path, Path("config.yaml"), None)
    assert plan == LaunchPlan(
        ("kk", "create", "cluster", "-f", "config.yaml", "--yes"), tmp_path, facts.KUBEKEY
    )
    kk = tmp_path / "kk"
    kk.write_text("#!/bin/sh\n")
    kk.chmod(0o755)
    assert plan_launch("kubekey", tmp_path, Path("config.yaml"), None).argv[0] == "./kk"


def test_kubekey_v4_runs_with_its_inventory(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "apiVersion: kubekey.kubesphere.io/v1\nkind: Config\nspec: {}\n"
    )
    with pytest.raises(InputError, match=r"inventory\.yaml: no such file"):
        plan_launch("kubekey", tmp_path, Path("config.yaml"), None)
    (tmp_path / "inventory.yaml").write_text("apiVersion: kubekey.kubesphere.io/v1\n")
    plan = plan_launch("kubekey", tmp_path, Path("config.yaml"), None)
    assert plan.argv == ("kk", "create", "cluster", "-i", "inventory.yaml", "-c", "config.yaml")
    assert plan.facts is facts.KUBEKEY_V4


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
    assert plan.facts is facts.KUBESPRAY


def test_kubespray_without_inventory_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "inv" / "group_vars" / "all").mkdir(parents=True)
    with pytest.raises(InputError, match="no inventory file"):
        plan_launch("kubespray", tmp_path, Path("inv/group_vars/all/all.yml"), None)


def test_default_log_path_is_next_to_halb_yaml(tmp_path: Path) -> None:
    assert default_log_path(tmp_path, datetime(2024, 1, 2, 3, 4, 5)) == (
        tmp_path / "halb-install-20240102-030405.log"
    )
