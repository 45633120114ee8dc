"""Detection of a hostile host, pure: the link and neighbour parsers and the status
problems, on output captured in the lab (tests/fixtures/vrrp_filter): lb2's filter after
the rogue-vrrp drill (node1 forging lb1's address), the LB hosts' links and neighbours.
taskbox-ip-neigh-spoofed.txt is the taskbox's table in the shape `ip -o neigh` prints,
with the VIPs on node1's MAC as `halb status` saw them during the arp-spoof drill."""

from __future__ import annotations

from pathlib import Path

from halb import intruders
from halb.facts.lbstate import LbFacts
from halb.facts.neigh import parse_link_macs, parse_neigh
from halb.status_report import VipRef, assess, render_text
from halb.vrrp_filter import parse_status

D = Path(__file__).parent.parent / "fixtures" / "vrrp_filter"
LB1_MAC, LB2_MAC, NODE1_MAC = "02:29:b6:6c:18:90", "02:00:00:aa:bb:02", "22:91:94:51:24:ca"
VIPS = [
    VipRef("internal", "10.250.130.253", "halb_internal", interface="eth0"),
    VipRef("external", "10.250.130.254", "halb_external", interface="eth0"),
]
NAMES = {"10.250.130.11": "lb1", "10.250.130.12": "lb2", "10.250.130.31": "node1"}
HELD = ("10.250.130.253", "10.250.130.254")


def read(name: str) -> str:
    return (D / name).read_text()


def test_parse_link_macs() -> None:
    assert parse_link_macs(read("lb1-ip-link.txt")) == {"eth0": LB1_MAC}  # lo has none


def test_parse_neigh_skips_failed_entries() -> None:
    got = parse_neigh(read("taskbox-ip-neigh-spoofed.txt"))
    assert got["10.250.130.253"] == NODE1_MAC and "10.250.130.11" not in got
    assert parse_neigh(read("lb2-ip-neigh.txt"))["10.250.130.31"] == NODE1_MAC


def facts(with_filter: bool = True) -> list[LbFacts]:
    from halb.facts.ipaddr import IfAddr

    held = tuple(IfAddr("eth0", "inet", a, 32, "eth0") for a in HELD)
    lb1 = LbFacts("lb1", addrs=held, macs=parse_link_macs(read("lb1-ip-link.txt")))
    lb2 = LbFacts(
        "lb2",
        macs=parse_link_macs(read("lb2-ip-link.txt")),
        neigh=parse_neigh(read("lb2-ip-neigh.txt")),
        vrrp_filter=parse_status(read("lb2-list-table.json")) if with_filter else None,
    )
    return [lb1, lb2]


def test_a_forged_peer_address_is_named_with_the_senders_mac() -> None:
    found, notes = intruders.find(
        facts(), [intruders.VipSeen("internal", HELD[0], "eth0", "lb1")], names=NAMES
    )
    (i,) = found
    assert (i.kind, i.seen_by, i.address, i.mac, i.packets) == (
        "vrrp",
        "lb2",
        "10.250.130.11",
        NODE1_MAC,
        164,
    )
    assert "10.250.130.11 (lb1's address, forged) from MAC 22:91:94:51:24:ca, not lb1's" in i.text
    assert notes == []


def test_a_vip_on_a_foreign_mac_is_a_problem_naming_the_mac_and_its_owner() -> None:
    fs = facts(with_filter=False)
    local = parse_neigh(read("taskbox-ip-neigh-spoofed.txt"))
    rep = assess(fs, VIPS, [], local_neigh=local, names=NAMES)
    assert not rep.ok
    assert len(rep.intruders) == 2
    text = "\n".join(render_text(rep))
    assert (
        "PROBLEM: this host: VIP internal (10.250.130.253) is answered for by MAC "
        "22:91:94:51:24:ca (node1, 10.250.130.31), not by its holder lb1 (02:29:b6:6c:18:90)"
    ) in text


def test_a_stale_entry_on_the_other_lb_host_is_a_note_and_the_right_one_nothing() -> None:
    fs = facts(with_filter=False)
    stale = {HELD[0]: LB2_MAC, HELD[1]: LB1_MAC}
    rep = assess(fs, VIPS, [], local_neigh=stale, names=NAMES)
    assert rep.intruders == ()
    assert any("sends VIP internal (10.250.130.253) to lb2" in n for n in rep.notes)
    assert not any("external" in n and "stale" in n for n in rep.notes)


def test_status_json_and_host_line_carry_the_filter() -> None:
    rep = assess(facts(), VIPS, [], local_neigh={}, names=NAMES)
    d = rep.as_dict()
    assert d["ok"] is False and d["intruders"][0]["mac"] == NODE1_MAC
    lb2 = next(h for h in rep.hosts if h.host == "lb2")
    assert lb2.vrrp_filter and "dropped 164" in lb2.vrrp_filter


def test_textfile() -> None:
    rep = assess(
        facts(),
        VIPS,
        [],
        local_neigh=parse_neigh(read("taskbox-ip-neigh-spoofed.txt")),
        names=NAMES,
    )
    text = intruders.textfile(rep.intruders)
    assert (
        'halb_vrrp_foreign_dropped{host="lb2",interface="eth0",address="10.250.130.11",'
        'mac="22:91:94:51:24:ca"} 164'
    ) in text
    assert 'halb_intruders{kind="vrrp"} 1\nhalb_intruders{kind="arp"} 2\n' in text
    assert text.count("halb_vip_foreign_mac{") == 2
