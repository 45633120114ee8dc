"""Preflight over IPv6: the NDP probe the helper sends, the advertisements it parses, the
subnet of an IPv6 VIP, and the findings (captured frames, no network)."""

from __future__ import annotations

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from halb.facts import ipaddr
from halb.facts.packets import PACKET_HELPER, ArpReply, ndp_probe_argv, parse_na
from halb.level import Level
from halb.preflight.judge import arp_results

IP_ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host noprefixroute \\       valid_lft forever preferred_lft forever
2: eth0    inet 10.250.9.11/24 brd 10.250.9.255 scope global eth0\\       valid_lft forever
2: eth0    inet6 fd25:250:9::11/64 scope global nodad \\       valid_lft forever
2: eth0    inet6 fe80::a8bb:ccff:fedd:1/64 scope link \\       valid_lft forever
"""


def helper_namespace() -> dict[str, object]:
    """The helper's functions, without running its main()."""
    ns: dict[str, object] = {}
    exec(PACKET_HELPER.rsplit("main(*sys.argv[1:])", 1)[0], ns)
    return ns


def test_dad_probe_is_a_valid_neighbour_solicitation() -> None:
    dad_probe = helper_namespace()["dad_probe"]
    target = bytes.fromhex("fd250250000900000000000000000253")
    frame = dad_probe(bytes.fromhex("02aabbccdd01"), target)  # type: ignore[operator]
    pkt = Ether(frame)
    assert pkt.dst == "33:33:ff:00:02:53" and pkt.src == "02:aa:bb:cc:dd:01"
    ip6 = pkt[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == ("::", "ff02::1:ff00:253", 255)
    ns = pkt[ICMPv6ND_NS]
    assert ns.tgt == "fd25:250:9::253"
    sent = ns.cksum
    del ns.cksum  # scapy recomputes it: the helper's checksum must be the same
    assert Ether(bytes(pkt))[ICMPv6ND_NS].cksum == sent


def test_neighbour_advertisement_names_mac_and_address() -> None:
    na = (
        Ether(src="02:00:00:00:00:21", dst="33:33:00:00:00:01")
        / IPv6(src="fe80::21", dst="ff02::1")
        / ICMPv6ND_NA(tgt="fd25:250:9::253", R=0, S=0, O=1)
    )
    assert parse_na(bytes(na)) == ArpReply("02:00:00:00:00:21", "fd25:250:9::253", "")
    ns = Ether() / IPv6() / ICMPv6ND_NS(tgt="fd25:250:9::253")
    assert parse_na(bytes(ns)) is None
    assert parse_na(b"\x00" * 20) is None


def test_ndp_argv_carries_the_vips() -> None:
    argv = ndp_probe_argv("eth0", ["fd25:250:9::253", "fd25:250:9::254"])
    assert argv[:2] == ["python3", "-c"] and argv[3:] == [
        "ndp",
        "eth0",
        "1.0",
        "fd25:250:9::253,fd25:250:9::254",
    ]


def test_subnet_for_ipv6_skips_link_local_and_the_other_family() -> None:
    addrs = ipaddr.unicast(ipaddr.parse_ip_addr(IP_ADDR))
    assert all(not a.address.startswith("fe80") for a in addrs)
    hit = ipaddr.subnet_for("fd25:250:9::253", addrs, "eth0")
    assert hit is not None and hit.address == "fd25:250:9::11"
    assert ipaddr.subnet_for("fd25:250:8::253", addrs, "eth0") is None
    v4 = ipaddr.subnet_for("10.250.9.253", addrs, "eth0")
    assert v4 is not None and v4.address == "10.250.9.11"


def test_a_vip_answered_over_ndp_is_refused() -> None:
    vip = "fd25:250:9::253"
    heard = {"lb1": (ArpReply("02:00:00:00:00:21", vip, ""),), "lb2": ()}
    (r,) = arp_results(vip, heard, {}, {"02:00:00:00:00:11": "lb1"})
    assert (r.check, r.level) == ("vip-ndp", Level.FAIL)
    assert "answers neighbour solicitations for it (heard from lb1, lb2)" in r.message
    (ok,) = arp_results(vip, {"lb1": ()}, {}, {})
    assert (ok.check, ok.level) == ("vip-ndp", Level.OK)
    # an LB host's own answer is the interface check's business
    (own,) = arp_results(vip, heard, {}, {"02:00:00:00:00:21": "lb2"})
    assert own.level is Level.OK


def test_vrrp6_advert_is_parsed_with_its_family() -> None:
    from halb.facts.packets import parse_vrrp

    # VRRPv3 over IPv6 (RFC 5798): version 3, type 1, VRID 81, priority 254, 1 address,
    # advert 0.03 s (3 centiseconds), checksum left 0 (not checked here)
    vrrp = bytes([0x31, 81, 254, 1, 0x00, 0x03, 0, 0])
    vrrp += bytes.fromhex("fd250250000900000000000000000253")
    ip6 = bytes.fromhex("60000000") + len(vrrp).to_bytes(2, "big") + bytes([112, 255])
    ip6 += bytes.fromhex("fd250250000900000000000000000011")
    ip6 += bytes.fromhex("fd250250000900000000000000000012")
    frame = bytes(6) + bytes(6) + b"\x86\xdd" + ip6 + vrrp
    a = parse_vrrp(frame)
    assert a is not None
    assert (a.family, a.version, a.router_id, a.priority) == (6, 3, 81, 254)
    assert (a.source, a.destination) == ("fd25:250:9::11", "fd25:250:9::12")
    assert a.addresses == ("fd25:250:9::253",) and a.advert_int == 0.03
    # the listener asks for IPv6 frames only when a VIP is IPv6
    from halb.facts.packets import vrrp_listen_argv

    assert vrrp_listen_argv("eth0", 3.0)[3:] == ["vrrp", "eth0", "3"]
    assert vrrp_listen_argv("eth0", 3.0, ipv6=True)[3:] == ["vrrp", "eth0", "3", "6"]


def test_ipv4_wildcard_leaves_an_ipv6_vip_port_free() -> None:
    from halb.facts.ss import Listener, port_conflicts

    ls = [Listener("0.0.0.0", 6443, "kube-apiserver")]
    assert port_conflicts(ls, "fd25:250:9::253", 6443) == []
    assert port_conflicts(ls, "10.250.9.253", 6443) == ls
    both = [Listener("::", 6443, "x")]
    assert port_conflicts(both, "fd25:250:9::253", 6443) == both
