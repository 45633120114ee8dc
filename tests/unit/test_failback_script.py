"""failback.sh, the LB hosts' own failback through the handover bridge: what it is
rendered with, and that its pieces are valid sh and nftables. The lab test in
tests/lab/test_failback.py runs it for real under load, with halb not running."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from halb.drain import handover
from halb.paths import FAILBACK_SCRIPT
from halb.render import KEEPALIVED_CONF, render_cluster
from halb.spec import Cluster
from tests.unit.test_drain_profiles import cluster_with


def script(c: Cluster, host: str = "lb1") -> str:
    return render_cluster(c)[host][FAILBACK_SCRIPT].content


def test_the_script_is_valid_sh_and_root_only_to_write(tmp_path: Path) -> None:
    c = cluster_with(tmp_path, 3, profile="fast")
    files = render_cluster(c)["lb2"]
    assert files[FAILBACK_SCRIPT].mode == 0o755
    subprocess.run(["sh", "-n", "-c", files[FAILBACK_SCRIPT].content], check=True)
    r = subprocess.run(["sh", "-c", files[FAILBACK_SCRIPT].content, "failback.sh", "bogus"])
    assert r.returncode == 2


def test_timers_come_from_the_profile_unless_set(tmp_path: Path) -> None:
    fast = script(cluster_with(tmp_path, 2, profile="fast"))
    # hold 2 s, grace 10 s; the wait for MASTER: preempt delay 3 + 4 adverts + 5 s
    assert "HOLD_CS=200\nreadonly GRACE_CS=1000\nreadonly WAIT_CS=812\nreadonly PREEMPT=1\n" in fast
    assert "timeout 1000ms" in fast  # never below a second
    default = script(cluster_with(tmp_path, 2, profile="default"))
    assert "HOLD_CS=300\nreadonly GRACE_CS=1000\nreadonly WAIT_CS=900\n" in default
    assert "timeout 3500ms" in default  # three 1 s adverts missed: no longer the holder
    given = script(cluster_with(tmp_path, 2, failback_hold=7.5, failback_grace=4))
    assert "HOLD_CS=750\nreadonly GRACE_CS=400\n" in given


def test_the_bridge_rule_is_the_drain_s_rule_with_the_holder_found_on_the_host(
    tmp_path: Path,
) -> None:
    c = cluster_with(tmp_path, 3, profile="fast")
    text = script(c, "lb1")
    m = re.search(r"halb_internal\) echo 'add chain ip halb_failback pre \{ .* \}'\n"
                  r"\s+echo 'add rule ip halb_failback pre (.*)' ;;", text)  # fmt: skip
    assert m is not None
    move = handover.Move("10.9.0.100", "eth0", "lb2", "10.9.0.11", ("lb1",))
    drain = handover.forward_rules([move], "lb1")
    assert m.group(1).replace("@HOLDER@", "10.9.0.11") in drain
    # the peers' priorities decide whether this host would preempt the holder at all
    assert '"halb_internal 10.9.0.11") echo 252 ;;' in text
    assert '"halb_internal 10.9.0.12") echo 250 ;;' in text
    assert 'halb_internal) echo "10.9.0.100 eth0 ' in text


def test_keepalived_tracks_the_returning_flag_with_the_drain_weight(tmp_path: Path) -> None:
    conf = render_cluster(cluster_with(tmp_path, 2, profile="fast"))["lb1"][KEEPALIVED_CONF]
    text = conf.content
    block = re.search(r"track_file returning_halb_internal \{(.*?)\}", text, re.S)
    assert block is not None
    assert '"/etc/keepalived/halb/returning-halb_internal"' in block.group(1)
    assert "init_file 1 overwrite" in block.group(1)  # every start comes back low
    assert "weight -3\n" in block.group(1)  # 254 -> 251, just below lb2's 252
    assert "        returning_halb_internal\n" in text


@pytest.mark.parametrize("profile", ["default", "fast"])
@pytest.mark.parametrize("n", [2, 3, 6, 12])
def test_a_standby_falls_just_below_the_lowest_peer_in_order(
    tmp_path: Path, profile: str, n: int
) -> None:
    """Every backup keeps its returning flag set: it must never preempt a peer at full
    priority, keep the hosts' order, stay above a drained holder, and add as little skew
    as it can (the old drain weight made a `default` takeover 0.2 s slower)."""
    c = cluster_with(tmp_path, n, profile=profile)
    for v in c.vips:
        prios = dict(v.priorities)
        low = min(prios.values())
        standby = {}
        for h, p in prios.items():
            conf = render_cluster(c)[h][KEEPALIVED_CONF].content
            block = re.search(rf"track_file returning_{v.instance} \{{(.*?)\}}", conf, re.S)
            assert block is not None
            w = re.search(r"weight (-\d+)", block.group(1))
            assert w is not None
            standby[h] = p + int(w.group(1))
        assert all(low - 9 <= s < low for s in standby.values()), standby
        drained = max(prios.values()) + c.track_weight
        assert all(s > drained for s in standby.values()), (standby, drained)
        order = sorted(prios, key=lambda h: -prios[h])
        firsts = [standby[h] for h in order[:9]]
        assert firsts == sorted(firsts, reverse=True) and len(set(firsts)) == len(firsts)
    # without preemption nothing is taken back: no flag to track
    plain = render_cluster(cluster_with(tmp_path, 2, nopreempt=True))["lb1"][KEEPALIVED_CONF]
    assert "returning" not in plain.content
    assert "readonly PREEMPT=0" in script(cluster_with(tmp_path, 2, nopreempt=True))


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="nft -c needs root (in a network namespace of its own)",
)
def test_nft_accepts_the_advert_watch_and_the_bridge(tmp_path: Path) -> None:
    text = script(cluster_with(tmp_path, 2, profile="fast"))
    watch = text.split("nft -f - <<EOF", 1)[1].split("\nEOF\n", 1)[0].split("\n", 1)[1]
    rule = re.search(r"halb_internal\) echo '(add chain .*)'\n\s+echo '(add rule .*)' ;;", text)
    assert rule is not None
    ruleset = (
        watch.replace("$TABLE", "halb_failback")
        + f"\n{rule.group(1)}\n"
        + rule.group(2).replace("@HOLDER@", "10.9.0.11")
        + "\n"
    )
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", "ip link add eth0 type veth peer name p0 && nft -f -"],
        input=ruleset,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr + ruleset


def test_the_holder_is_taken_from_only_when_its_adverts_are_below_this_host(
    tmp_path: Path,
) -> None:
    """The agent compares the holder's advertised priority (lowered while it returns, or
    drained) with this host's own, and takes the VIP only from a known peer below it."""
    text = script(cluster_with(tmp_path, 3, profile="fast"), "lb2")  # lb2: 252
    vrid = re.search(r"halb_internal\) echo \"\S+ \S+ (\d+) 252 ", text)
    assert vrid is not None
    v = vrid.group(1)
    assert f"@th,8,8 {v} @th,16,8 1-251 update @low_{v} {{ ip saddr }}" in text
    assert f"@th,8,8 {v} @th,16,8 252-255 update @high_{v} {{ ip saddr }}" in text
    assert 'in_set "low_$vrid" "$1" || in_set "high_$vrid" "$1"' in text


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="an interface of its own needs root (in a network namespace of its own)",
)
def test_a_notify_that_came_after_a_later_change_is_told_apart(tmp_path: Path) -> None:
    """keepalived forks each notify, so MASTER and then BACKUP can run the other way
    round; the VIP on its interface says which is current."""
    body = script(cluster_with(tmp_path, 2, profile="fast"))
    vip = re.search(r"halb_internal\) echo \"(\S+) (\S+) ", body)
    assert vip is not None
    f = tmp_path / "failback.sh"
    f.write_text(body)
    ask = " ".join(
        f'sh {f} current halb_internal {s}; echo "{s} $?";' for s in ("MASTER", "BACKUP", "FAULT")
    )
    dev = vip.group(2)
    run = (
        f"ip link add {dev} type veth peer name p0 && ip link set {dev} up && {ask} "
        f"ip addr add {vip.group(1)}/32 dev {dev} && {ask} "
        f"sh {f} current some_ipv6_instance BACKUP; echo other $?"
    )
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", run], capture_output=True, text=True, timeout=30
    )
    # without the VIP: MASTER is stale; with it: BACKUP and FAULT are; unknown: current
    assert r.stdout.split("\n") == [
        "MASTER 1", "BACKUP 0", "FAULT 0", "MASTER 0", "BACKUP 1", "FAULT 1", "other 0", "",
    ], r.stderr  # fmt: skip


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="nft -c needs root (in a network namespace of its own)",
)
def test_nft_accepts_the_ipv6_watch_and_bridge_of_a_dual_stack_host() -> None:
    """An IPv6 VIP fails back as an IPv4 one does: adverts watched in an ip6 table (VRRPv3
    over IPv6), the bridge as an ip6 rule handing packets to the holder's IPv6 address."""
    golden = Path(__file__).parents[1] / "golden/cases/dual-stack/expected/lba"
    text = (golden / "etc/keepalived/halb/failback.sh").read_text()
    watch = text.split("nft -f - <<EOF", 1)[1].split("\nEOF\n", 1)[0].split("\n", 1)[1]
    assert "table ip6 $TABLE {" in watch and "{ ip6 saddr }" in watch
    rule = re.search(r"internal6\) echo '(add chain ip6 .*)'\n\s+echo '(add rule .*)' ;;", text)
    assert rule is not None and "ip6 daddr" in rule.group(2)
    dev = re.search(r'halb_internal6\) echo "\S+ (\S+) ', text)
    assert dev is not None
    ruleset = (
        watch.replace("$TABLE", "halb_failback")
        + f"\n{rule.group(1)}\n"
        + rule.group(2).replace("@HOLDER@", "fe80::1")
        + "\n"
    )
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         f"ip link add {dev.group(1)} type veth peer name p0 && nft -f -"],
        input=ruleset,
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + ruleset
