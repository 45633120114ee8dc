"""Parsers and assessment of `halb status`, on text captured from the lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from halb.facts.haproxy import parse_show_stat
from halb.facts.ipaddr import parse_ip_addr
from halb.facts.lbstate import LbFacts, facts_from_output, parse_vrrp_state, split_sections
from halb.status import FrontendRef, VipRef, assess

FIX = Path(__file__).parent.parent / "fixtures" / "status"
VIPS = [
    VipRef("internal", "10.250.218.253", "halb_internal"),
    VipRef("external", "10.250.218.254", "halb_external"),
]
FRONTENDS = [
    FrontendRef("apiserver", "internal", ("master1", "master2", "master3")),
    FrontendRef("console", "external", ("master1", "master2", "master3", "node1", "node2")),
]


def text(name: str) -> str:
    return (FIX / name).read_text()


def test_ip_addr_holder_has_both_vips_with_keepalived_labels() -> None:
    addrs = parse_ip_addr(text("ip-addr-holder.txt"))
    v4 = {(a.address, a.prefixlen, a.label) for a in addrs if a.family == "inet"}
    assert v4 == {
        ("127.0.0.1", 8, "lo"),
        ("10.250.218.11", 24, "eth0"),
        ("10.250.218.253", 32, "eth0:halb0"),
        ("10.250.218.254", 32, "eth0:halb1"),
    }
    assert all(a.ifname in ("lo", "eth0") for a in addrs)
    assert sum(a.family == "inet6" for a in addrs) == 2


def test_ip_addr_backup_has_no_vip() -> None:
    addrs = parse_ip_addr(text("ip-addr-backup.txt"))
    assert "10.250.218.253" not in {a.address for a in addrs}
    assert "10.250.218.12" in {a.address for a in addrs}


def test_ip_addr_odd_lines() -> None:
    sample = (
        "5: veth-lb1@if4    inet 10.0.0.1/24 brd 10.0.0.255 scope global veth-lb1\\ "
        "valid_lft forever preferred_lft forever\n"
        "garbage line\n"
        "7: br0    inet 10.9.9.9 scope global br0\\ valid_lft forever\n"
    )
    addrs = parse_ip_addr(sample)
    assert [(a.ifname, a.address, a.prefixlen) for a in addrs] == [
        ("veth-lb1", "10.0.0.1", 24),
        ("br0", "10.9.9.9", 32),
    ]


def test_show_stat_servers_and_aggregates() -> None:
    rows = parse_show_stat(text("show-stat.csv"))
    servers = {(r.pxname, r.svname): r for r in rows if r.type == 2}
    assert len(servers) == 9
    assert servers[("apiserver", "master1")].status == "UP"
    assert servers[("apiserver", "master1")].check_status == "L7OK"
    assert servers[("apiserver", "master1")].addr == "10.250.218.21:6443"
    assert servers[("console", "master1")].status == "DOWN"
    assert not servers[("console", "master1")].healthy
    assert servers[("console", "node1")].healthy
    assert {r.svname for r in rows if r.type == 0} == {"FRONTEND"}


def test_stats_page_csv_parses_like_the_socket() -> None:
    a = {(r.pxname, r.svname, r.status) for r in parse_show_stat(text("show-stat.csv"))}
    b = {(r.pxname, r.svname, r.status) for r in parse_show_stat(text("stats-page.csv"))}
    assert a == b


def test_show_stat_transitions_count_as_their_current_state() -> None:
    rows = {
        r.svname: r
        for r in parse_show_stat(text("show-stat-transition.csv"))
        if r.pxname == "apiserver" and r.type == 2
    }
    assert rows["master1"].status == "UP 1/3" and rows["master1"].healthy  # still serving
    cons = {
        r.svname: r
        for r in parse_show_stat(text("show-stat-transition.csv"))
        if r.pxname == "console" and r.type == 2
    }
    assert cons["node3"].status == "MAINT" and not cons["node3"].healthy


def test_show_stat_empty_or_error_text() -> None:
    assert parse_show_stat("") == ()
    assert parse_show_stat("Unknown command\n") == ()


@pytest.mark.parametrize(
    ("raw", "state"),
    [("MASTER\n", "MASTER"), ("backup", "BACKUP"), ("FAULT x", "FAULT"), ("", None), ("?", None)],
)
def test_vrrp_state(raw: str, state: str | None) -> None:
    assert parse_vrrp_state(raw) == state


def test_split_sections() -> None:
    sec = split_sections("junk\n@@a\n1\n2\n@@b c\n\n@@end\n")
    assert sec == {"a": "1\n2", "b c": "", "end": ""}


def _facts(name: str) -> LbFacts:
    f = facts_from_output(name, text(f"gather-{name}.txt"))
    return LbFacts(f.host, None, f.addrs, f.vrrp, 100, 200, f.stats)


def test_gathered_output_to_facts() -> None:
    f = _facts("lb1")
    assert f.vrrp == {"halb_internal": "MASTER", "halb_external": "MASTER"}
    assert f.stats is not None and len(f.stats) > 10
    b = _facts("lb2")
    assert b.vrrp == {"halb_internal": "BACKUP", "halb_external": "BACKUP"}


def test_assess_healthy_pair() -> None:
    r = assess([_facts("lb1"), _facts("lb2")], VIPS, FRONTENDS)
    assert r.ok, r.problems
    assert {v.name: v.holders for v in r.vips} == {
        "internal": ("lb1",),
        "external": ("lb1",),
    }
    fe = {f.name: f for f in r.frontends}
    assert (fe["apiserver"].up, fe["apiserver"].total, fe["apiserver"].seen_from) == (3, 3, "lb1")
    assert (fe["console"].up, fe["console"].total) == (3, 6)
    assert any("console" in n and "master1" in n for n in r.notes)
    d = r.as_dict()
    assert d["ok"] is True and d["hosts"][0]["vips"] == ("internal", "external")


def test_assess_split_brain_names_both_hosts() -> None:
    lb1 = _facts("lb1")
    lb2 = _facts("lb2")
    both = LbFacts("lb2", None, lb1.addrs, lb2.vrrp, 1, 2, lb2.stats)
    r = assess([lb1, both], VIPS, FRONTENDS)
    assert not r.ok
    assert any("split brain" in p and "lb1 and lb2" in p for p in r.problems)
    # lb2 holds the VIP while its VRRP state says BACKUP: noted
    assert any("lb2: holds" in n and "BACKUP" in n for n in r.notes)


def test_assess_no_holder() -> None:
    r = assess([_facts("lb2")], VIPS, FRONTENDS)
    assert any("held by no LB host" in p for p in r.problems)


def test_assess_frontend_without_healthy_backend() -> None:
    lb1 = _facts("lb1")
    down = LbFacts(
        "lb1", None, lb1.addrs, lb1.vrrp, 1, 2, parse_show_stat(text("show-stat-all-down.csv"))
    )
    r = assess([down, _facts("lb2")], VIPS, FRONTENDS)
    assert r.problems == ("frontend apiserver: no healthy backend (as lb1 sees it)",)


def test_assess_degraded_is_a_note_not_a_problem() -> None:
    lb1 = _facts("lb1")
    deg = LbFacts(
        "lb1", None, lb1.addrs, lb1.vrrp, 1, 2, parse_show_stat(text("show-stat-degraded.csv"))
    )
    r = assess([deg, _facts("lb2")], VIPS, FRONTENDS)
    assert r.ok
    assert {f.name: f.up for f in r.frontends} == {"apiserver": 1, "console": 2}


def test_assess_unreachable_and_stopped_services() -> None:
    r = assess(
        [_facts("lb1"), LbFacts("lb2", error="ssh to lb2 failed"), LbFacts("lb3")],
        VIPS,
        FRONTENDS,
    )
    assert "lb2: unreachable: ssh to lb2 failed" in r.problems
    assert "lb3: HAProxy is not running" in r.problems
    assert "lb3: keepalived is not running" in r.problems
    assert not any(p.startswith("lb1") for p in r.problems)
