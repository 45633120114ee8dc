"""The drain handover: who forwards what to whom, and the scripts that do it.

The rulesets go through the real `nft -c` (check only) in a network namespace of their
own when the test runs as root; the scripts through `sh -n`. The lab test in
tests/lab/test_drain.py runs them for real under load.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from halb.drain import handover
from halb.drain.handover import Move

IPS = {"lb1": "10.0.0.11", "lb2": "10.0.0.12", "lb3": "10.0.0.13"}
IFACES = {"10.0.0.253": "eth0", "10.0.0.254": "bond0.100"}


PRIOS = {"10.0.0.253": {"lb1": 254, "lb2": 252, "lb3": 250}, "10.0.0.254": {"lb2": 254}}


def test_a_drain_forwards_from_every_healthy_peer_to_the_one_old_holder() -> None:
    holders = {"10.0.0.253": ["lb1"], "10.0.0.254": ["lb2"]}
    will = handover.will_hold("drain", "lb1", holders, PRIOS, ["lb2", "lb3"], preempt=True)
    assert will == {"10.0.0.253": ["lb2", "lb3"], "10.0.0.254": []}
    moves = handover.plan(holders, will, IFACES, IPS)
    # lb2 already holds the second VIP: it stays, nothing to bridge for it
    assert moves == [Move("10.0.0.253", "eth0", "lb1", "10.0.0.11", ("lb2", "lb3"))]


def test_an_undrain_forwards_from_the_host_to_each_holder_it_will_preempt() -> None:
    holders = {"10.0.0.253": ["lb2"], "10.0.0.254": ["lb2"]}
    will = handover.will_hold("undrain", "lb1", holders, PRIOS, ["lb2", "lb3"], preempt=True)
    assert will == {"10.0.0.253": ["lb1"], "10.0.0.254": []}  # lb1 leads only the first
    moves = handover.plan(holders, will, IFACES, IPS)
    assert moves == [Move("10.0.0.253", "eth0", "lb2", "10.0.0.12", ("lb1",))]
    # without preemption nothing moves back, so nothing is bridged
    assert handover.will_hold("undrain", "lb1", holders, PRIOS, ["lb2"], preempt=False) == {
        "10.0.0.253": [],
        "10.0.0.254": [],
    }


def test_one_taker_per_moving_vip_has_its_returning_flag_cleared() -> None:
    """Every backup stays low (failback.sh): a drain raises only the best healthy peer, so
    the others never preempt it unbridged; an undrain raises the host for what it leads."""
    holders = {"10.0.0.253": ["lb1"], "10.0.0.254": ["lb2"]}
    assert handover.raised("drain", "lb1", holders, PRIOS, ["lb2", "lb3"]) == {"10.0.0.253": "lb2"}
    # lb2 unhealthy (not among the peers): the next one takes it
    assert handover.raised("drain", "lb1", holders, PRIOS, ["lb3"]) == {"10.0.0.253": "lb3"}
    assert handover.raised("drain", "lb1", holders, PRIOS, []) == {}
    back = {"10.0.0.253": ["lb2"], "10.0.0.254": ["lb2"]}
    assert handover.raised("undrain", "lb1", back, PRIOS, ["lb2", "lb3"]) == {"10.0.0.253": "lb1"}
    # lb3 leads nothing while lb1 or lb2 is healthy
    assert handover.raised("undrain", "lb3", back, PRIOS, ["lb1", "lb2"]) == {}
    argv = handover.raise_argv(["halb_internal"])
    assert argv[-1] == "/etc/keepalived/halb/returning-halb_internal"
    subprocess.run(["sh", "-n", "-c", handover.RAISE], check=True)


def test_raising_clears_the_flags_that_exist_and_creates_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    have, absent = tmp_path / "returning-a", tmp_path / "returning-b"
    have.write_text("1\n")
    subprocess.run(["sh", "-c", handover.RAISE, "sh", str(have), str(absent)], check=True)
    assert have.read_text() == "0\n"
    assert not absent.exists()  # nopreempt, or an IPv6 instance: no flag, none made


def test_no_bridge_without_exactly_one_holder_or_without_a_taker() -> None:
    assert handover.plan({"10.0.0.253": []}, {"10.0.0.253": ["lb2"]}, IFACES, IPS) == []
    split = {"10.0.0.253": ["lb1", "lb2"]}
    assert handover.plan(split, {"10.0.0.253": ["lb3"]}, IFACES, IPS) == []
    assert handover.plan({"10.0.0.253": ["lb1"]}, {"10.0.0.253": []}, IFACES, IPS) == []


def test_the_taker_hands_over_only_mid_connection_packets_it_never_answered() -> None:
    moves = [
        Move("10.0.0.253", "eth0", "lb1", "10.0.0.11", ("lb2",)),
        Move("10.0.0.254", "bond0.100", "lb3", "10.0.0.13", ("lb2",)),
    ]
    rules = handover.forward_rules(moves, "lb2")
    assert rules.startswith("table ip halb_handover\ndelete table ip halb_handover\n")
    assert (
        "ip daddr 10.0.0.253 tcp flags & syn != syn ct state new,invalid "
        'counter dup to 10.0.0.11 device "eth0" drop'
    ) in rules
    assert 'dup to 10.0.0.13 device "bond0.100" drop' in rules
    # a host that takes nothing gets an empty chain
    assert "dup" not in handover.forward_rules(moves, "lb9")


def test_values_are_checked_again_before_they_reach_a_ruleset() -> None:
    for bad in (
        Move("10.0.0.253; flush ruleset", "eth0", "lb1", "10.0.0.11", ("lb2",)),
        Move("10.0.0.253", "eth0", "lb1", "10.0.0.11\n", ("lb2",)),
        Move("10.0.0.253", 'eth0" drop', "lb1", "10.0.0.11", ("lb2",)),
        Move("10.0.0.253", "..", "lb1", "10.0.0.11", ("lb2",)),  # a path in the script
    ):
        with pytest.raises(ValueError):
            handover.forward_rules([bad], "lb2")


def test_the_count_of_handed_packets_is_read_from_the_undo_output() -> None:
    assert handover.forwarded("forwarded 8\nforwarded 3\n") == 11
    assert handover.forwarded("") == 0
    assert handover.forwarded("forwarded x\nnoise 4\n") == 0


def test_the_scripts_are_valid_sh_and_carry_no_values() -> None:
    moves = [Move("10.0.0.253", "eth0", "lb1", "10.0.0.11", ("lb2",))]
    for argv in (
        handover.forward_argv(moves, "lb2", 40),
        handover.hold_argv(),
        handover.undo_argv(),
    ):
        assert argv[:2] == ["sh", "-c"]
        assert "10.0.0." not in argv[2]  # values travel as positional parameters
        subprocess.run(["sh", "-n", "-c", argv[2]], check=True)
    assert handover.forward_argv(moves, "lb2", 40)[4] == "41"  # the timer outlives halb


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="nft -c needs root (in a network namespace of its own)",
)
def test_nft_accepts_the_ruleset() -> None:
    moves = [
        Move("10.0.0.253", "eth0", "lb1", "10.0.0.11", ("lb2",)),
        Move("10.0.0.254", "bond0.100", "lb1", "10.0.0.11", ("lb2",)),
    ]
    # nft resolves the device names: give the namespace the two interfaces
    script = (
        "ip link add eth0 type veth peer name p0 && "
        "ip link add bond0.100 type veth peer name p1 && nft -c -f -"
    )
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        input=handover.forward_rules(moves, "lb2"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="an interface of its own needs root (in a network namespace of its own)",
)
def test_two_vips_held_and_let_go_at_once_restore_the_interface_s_sysctls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Both VIPs of a host go MASTER (and later BACKUP) at the same moment, each in a
    notify of its own: the value saved must be the host's own, never the 1 the other had
    just set, or the host keeps arp_ignore=1 after it let go."""
    run = tmp_path / "run"
    script = (
        f"RUN={run}\n{handover.KEEP_LOCAL}\n"
        "ip link add eth0 type veth peer name p0 && ip link set eth0 up || exit 1\n"
        "for i in 1 2 3 4 5 6 7 8; do\n"
        "  echo 10.0.0.1 eth0 > $RUN/held-a; echo 10.0.0.2 eth0 > $RUN/held-b\n"
        "  keep_local 10.0.0.1 eth0 & keep_local 10.0.0.2 eth0 & wait\n"
        "  cat /proc/sys/net/ipv4/conf/eth0/arp_ignore\n"
        "  rm -f $RUN/held-a $RUN/held-b\n"
        "  let_go 10.0.0.1 eth0 & let_go 10.0.0.2 eth0 & wait\n"
        "  cat /proc/sys/net/ipv4/conf/eth0/arp_ignore\n"
        "  ip route show table local dev lo | grep -c 'metric 1'\n"
        "done\n"
        "true\n"
    )
    run.mkdir()
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "0", "0"] * 8, r.stdout
