"""The rogue faults' frames (scapy decodes what halb forges) and their names."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP, VRRPv3

from halb.cli.drill import parse_faults
from halb.drill import rogue
from halb.drill.fault_kinds import KINDS, Fault, Hits
from halb.errors import InputError

T = rogue.Target(
    vips=((51, "10.9.0.253"), (52, "10.9.0.254")),
    lbs=(("10.9.0.11", "02:00:00:00:00:11"), ("10.9.0.12", "02:00:00:00:00:12")),
    version=2,
    advert_int=1.0,
    password="s3cret",
    rogue_ip="10.9.0.31",
    rogue_mac="02:00:00:00:00:31",
)


def decode(variant: rogue.Variant, t: rogue.Target = T) -> list[Ether]:
    return [Ether(f) for f in rogue.frames(variant, t)]


def test_multicast_adverts_from_the_rogue_itself() -> None:
    fs = decode(rogue.Variant.MCAST)
    assert [f[VRRP].vrid for f in fs] == [51, 52]
    for f in fs:
        assert (f.src, f.dst) == ("02:00:00:00:00:31", "01:00:5e:00:00:12")
        assert (f[IP].src, f[IP].dst, f[IP].ttl, f[IP].proto) == (
            "10.9.0.31",
            "224.0.0.18",
            255,
            112,
        )
        assert f[VRRP].priority == 255 and f[VRRP].authtype == 1


def test_forged_unicast_carries_another_lb_hosts_address_and_a_valid_checksum() -> None:
    fs = decode(rogue.Variant.FORGED)
    pairs = {(f[IP].src, f[IP].dst, f.dst) for f in fs}
    assert pairs == {
        ("10.9.0.12", "10.9.0.11", "02:00:00:00:00:11"),
        ("10.9.0.11", "10.9.0.12", "02:00:00:00:00:12"),
    }
    for f in fs:
        assert f.src == "02:00:00:00:00:31"  # the rogue's own MAC: what the filter sees
        sent = f[VRRP].chksum
        del f[VRRP].chksum
        assert Ether(bytes(f))[VRRP].chksum == sent


def test_password_variants() -> None:
    right = decode(rogue.Variant.V2)[0][VRRP]
    auth = (right.auth1.to_bytes(4, "big") + right.auth2.to_bytes(4, "big")).rstrip(b"\0")
    assert auth == b"s3cret"
    bad = decode(rogue.Variant.V2_BADPASS)[0][VRRP]
    assert bad.authtype == 1 and bad.auth1 != right.auth1
    none = decode(rogue.Variant.V2, rogue.Target(**{**T.__dict__, "password": None}))[0][VRRP]
    assert none.authtype == 0


def test_v3_adverts_in_centiseconds() -> None:
    f = decode(rogue.Variant.V3)[0]
    assert f[VRRPv3].version == 3 and f[VRRPv3].adv == 100 and f[VRRPv3].priority == 255


def test_arp_requests_and_replies_for_each_vip() -> None:
    fs = decode(rogue.Variant.ARP)
    got = {(f[ARP].op, f[ARP].psrc, f[ARP].pdst, f[ARP].hwsrc) for f in fs}
    assert got == {
        (op, vip, vip, "02:00:00:00:00:31") for op in (1, 2) for vip in ("10.9.0.253", "10.9.0.254")
    }
    assert all(f.dst == "ff:ff:ff:ff:ff:ff" for f in fs)


def test_ipv6_vips_are_refused() -> None:
    t = rogue.Target(**{**T.__dict__, "vips": ((51, "fd00::1"),)})
    with pytest.raises(InputError, match="IPv6"):
        rogue.frames(rogue.Variant.MCAST, t)


def test_frames_file_is_hex_lines() -> None:
    fs = rogue.frames(rogue.Variant.ARP, T)
    assert [bytes.fromhex(x) for x in rogue.frames_file(fs).decode().split()] == fs


def test_names_all_and_the_group() -> None:
    assert "arp-spoof" not in parse_faults("all")
    assert parse_faults("rogue-vrrp") == (
        "rogue-vrrp-mcast", "rogue-vrrp-forged", "rogue-vrrp-v2", "rogue-vrrp-v2-badpass",
        "rogue-vrrp-v3",
    )  # fmt: skip
    assert parse_faults("arp-spoof,rogue-vrrp-v3") == ("arp-spoof", "rogue-vrrp-v3")
    for f in (Fault.ARP_SPOOF, Fault.ROGUE_V3):
        assert KINDS[f].hits is Hits.ROGUE and KINDS[f].rogue is not None
