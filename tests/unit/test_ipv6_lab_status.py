"""Per-family VIPs outside the renderer: the dual-stack lab's plan and files, and status
holders and split brain per family (pure, no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from halb.errors import InputError
from halb.facts.ipaddr import IfAddr
from halb.facts.lbstate import LbFacts
from halb.lab import writer
from halb.lab.topology import plan
from halb.spec import parse_spec
from halb.status import FrontendRef, VipRef, assess

V4 = VipRef("internal", "10.0.0.253", "halb_internal")
V6 = VipRef("internal", "fd25:250:9::253", "halb_internal6", 6, "internal6")


def test_dual_plan_gives_every_host_a_unique_local_address() -> None:
    p = plan("d", lbs=2, masters=1, nodes=1, octet=9, ip_family="dual")
    assert p.subnet6 == "fd25:250:9::/64"
    assert (p.vip_internal6, p.vip_external6) == ("fd25:250:9::253", "fd25:250:9::254")
    assert [(h.name, h.address6) for h in p.hosts] == [
        ("taskbox", "fd25:250:9::2"),
        ("lb1", "fd25:250:9::11"),
        ("lb2", "fd25:250:9::12"),
        ("master1", "fd25:250:9::21"),
        ("node1", "fd25:250:9::31"),
    ]
    assert all(h.address6 is None for h in plan("d", octet=9).hosts)
    with pytest.raises(InputError, match="use one of 4, 6, dual"):
        plan("d", ip_family="ipv6")


def test_ipv6_only_plan_has_ipv6_addresses_vips_and_no_installer(tmp_path: Path) -> None:
    p = plan("s", lbs=2, masters=1, nodes=1, octet=9, ip_family="6")
    assert (p.subnet, p.prefix_len) == ("fd25:250:9::/64", 64)
    assert (p.vip_internal, p.vip_external) == ("fd25:250:9::253", "fd25:250:9::254")
    assert p.host("lb1").address == "fd25:250:9::11" and p.host("lb1").address6 is None
    spec = parse_spec(tmp_path / "halb.yaml", yaml.safe_load(writer.halb_yaml(p)))
    assert str(spec.vips.internal.address) == "fd25:250:9::253"
    assert spec.vips.internal.address6 is None
    assert (spec.installer.kind, spec.installer.command) == ("command", "true")
    assert "lb1 ansible_host=fd25:250:9::11 ip=fd25:250:9::11" in writer.hosts_ini(
        p, tmp_path, "pw", "spw"
    )


def test_dual_lab_files_name_both_families(tmp_path: Path) -> None:
    p = plan("d", lbs=2, masters=1, nodes=1, octet=9, ip_family="dual")
    ini = writer.hosts_ini(p, tmp_path, "pw", "spw")
    assert "master1 ansible_host=10.250.9.21 ip=10.250.9.21 ip6=fd25:250:9::21" in ini
    spec = parse_spec(tmp_path / "halb.yaml", yaml.safe_load(writer.halb_yaml(p)))
    assert str(spec.vips.internal.address6) == "fd25:250:9::253"
    assert spec.vips.external is not None
    assert str(spec.vips.external.address6) == "fd25:250:9::254"
    assert "address6" not in writer.halb_yaml(plan("d", octet=9))


def facts(host: str, *held: str) -> LbFacts:
    addrs = tuple(IfAddr("eth0", "inet6" if ":" in a else "inet", a, 32, "eth0") for a in held)
    states = {"halb_internal": "BACKUP", "halb_internal6": "BACKUP"}
    return LbFacts(host, addrs=addrs, vrrp=states, haproxy_pid=1, keepalived_pid=2, stats=())


def test_status_holders_and_split_brain_are_per_family() -> None:
    fes = [FrontendRef("apiserver", "internal", ())]
    r = assess([facts("lb1", V4.address), facts("lb2", V6.address)], [V4, V6], fes)
    assert [(v.family, v.holders) for v in r.vips] == [(4, ("lb1",)), (6, ("lb2",))]
    assert [h.vips for h in r.hosts] == [("internal",), ("internal6",)]
    assert not [p for p in r.problems if "split brain" in p or "held by no" in p]

    r = assess([facts("lb1", V4.address, V6.address), facts("lb2", V6.address)], [V4, V6], fes)
    assert [p for p in r.problems if "split brain" in p] == [
        "split brain: VIP internal (fd25:250:9::253) is held by lb1 and lb2"
    ]
    r = assess([facts("lb1", V4.address), facts("lb2")], [V4, V6], fes)
    assert "VIP internal (fd25:250:9::253) is held by no LB host" in r.problems


def test_handover_bridge_moves_both_families() -> None:
    from halb.drain import handover
    from halb.drain.run import moves_for
    from halb.spec import load_cluster
    from halb.status_report import refs

    cluster = load_cluster(Path(__file__).parent.parent / "golden/cases/dual-stack/halb.yaml")
    vips, fes = refs(cluster)
    held = [v.address for v in vips]
    report = assess([facts("lba", *held), facts("lbb"), facts("lbc")], vips, fes)
    moves = moves_for(cluster, report, "lba", "drain", preempt=True)
    assert [(m.address, m.old, m.old_ip) for m in moves] == [
        ("172.20.1.250", "lba", "172.20.1.5"),
        ("172.20.1.251", "lba", "172.20.1.5"),
        ("fd00:20:1::250", "lba", "fd00:20:1::5"),
        ("fd00:20:1::251", "lba", "fd00:20:1::5"),
    ]
    assert all(m.takers == ("lbb", "lbc") for m in moves)
    rules = handover.forward_rules(moves, "lbb")
    assert rules.startswith("table ip halb_handover\ndelete table ip halb_handover\n")
    assert "table ip6 halb_handover6 {" in rules
    assert (
        "ip6 daddr fd00:20:1::250 tcp flags & syn != syn ct state new,invalid "
        'counter dup to fd00:20:1::5 device "bond0" drop'
    ) in rules
    assert "ip daddr fd00" not in rules and "ip6 daddr 172" not in rules
    # the old holder keeps its IPv6 VIPs on lo from halb (failback.sh keeps the IPv4 ones)
    assert handover.accept6_args(moves, "lba") == ["fd00:20:1::250", "fd00:20:1::251"]
    assert handover.accept6_argv(moves, "lbb", 10) is None
    # an IPv4-only move list gives the ruleset it always gave (no ip6 table)
    assert "ip6" not in handover.forward_rules(moves[:2], "lbb")
    # IPv6 values are checked again before they reach a ruleset or a script
    bad = handover.Move("fd00:20:1::250", "bond0", "lba", "fe80::5%bond0", ("lbb",))
    with pytest.raises(ValueError):
        handover.forward_rules([bad], "lbb")
    with pytest.raises(ValueError):
        handover.accept6_args([handover.Move("::ffff:1.2.3.4", "bond0", "lba", "x", ())], "lba")


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="nft -c needs root (in a network namespace of its own)",
)
def test_nft_accepts_the_ipv6_ruleset() -> None:
    from halb.drain import handover

    moves = [
        handover.Move("10.0.0.253", "eth0", "lb1", "10.0.0.11", ("lb2",)),
        handover.Move("fd00::253", "eth0", "lb1", "fd00::11", ("lb2",)),
    ]
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", "ip link add eth0 type veth peer name p0 && nft -c -f -"],
        input=handover.forward_rules(moves, "lb2"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not shutil.which("ip"), reason="needs iproute2")
@pytest.mark.parametrize("family", [4, 6])
def test_root_networks_are_networks_of_their_family(family: int) -> None:
    # `halb lab up` refuses a range this machine already has: every entry must parse, with
    # no route type word ("local", "broadcast"), "default" or nexthop line among them
    import ipaddress

    from halb.lab import netns

    nets = netns.root_networks(family)
    assert all(ipaddress.ip_network(n, strict=False).version == family for n in nets), nets
    if family == 4:
        assert netns.root_addresses() == [n.split("/")[0] for n in nets]
