"""IPv6 and dual-stack values: every kind halb.kinds accepts and refuses, and the spec
checks of IPv6 VIPs, LB hosts, backends and unicast peers (`halb validate`, exit 2 with
the file and key or host)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from halb import kinds
from halb.spec import load_cluster
from tests.unit.test_bad_inputs import INVENTORY, run_validate

# -- halb.kinds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("fd00:10::253", "fd00:10::253"), ("FD00:10:0:0::253", "fd00:10::253"),
     ("2001:db8::5", "2001:db8::5"), ("2a01:4f8::1", "2a01:4f8::1")],
)  # fmt: skip
def test_ipv6_vip_passes(value: str, canonical: str) -> None:
    assert kinds.vip_address(value) == ipaddress.IPv6Address(canonical)
    assert kinds.ipv6_vip(value) == ipaddress.IPv6Address(canonical)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("fe80::1%eth0", "zone ids are not supported"),
        ("fd00::1%1", "zone ids are not supported"),
        ("[fd00::1]", "without brackets here"),
        ("[fd00::1]:6443", "without brackets or a port here"),
        ("fd00::1/64", "without a prefix length"),
        ("::ffff:10.0.0.1", "IPv4-mapped address: give a VIP as 10.0.0.1"),
        ("ff02::12", "multicast"),
        ("ff05::1:3", "multicast"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("::1.2.3.4", "reserved"),
        ("100::1", "reserved"),
        ("fd00:10::", "subnet-router anycast"),
        ("fd00:10::fdff:ffff:ffff:ff80", "reserved subnet anycast"),
        ("fd00:10::fdff:ffff:ffff:ffff", "reserved subnet anycast"),
        ("fd00::g", "not an IPv6 address"),
        ("fd00:" * 40, "longer than any address"),
        ("10.0.0.250:6443", "write a VIP without a port here"),
    ],
)
def test_ipv6_vips_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("[", r"\[")):
        kinds.vip_address(value)


def test_ipv6_vip_is_not_an_ipv4_one() -> None:
    with pytest.raises(ValueError, match="not an IPv6 address"):
        kinds.ipv6_vip("10.0.0.5")
    with pytest.raises(ValueError, match="IPv6 or IPv4 address as a string"):
        kinds.vip_address(167772161)


@pytest.mark.parametrize(
    ("value", "why"),
    [("fe80::5", "link-local"), ("fe80::5%eth0", "zone"), ("[fd00::5]", "brackets"),
     ("[fd00::5]:22", "or a port"), ("ff02::1", "multicast"), ("::ffff:10.0.0.5", "mapped"),
     ("::1", "loopback"), ("fd00::5/64", "prefix length"), ("lb1.example.com", "not an IP"),
     ("10.0.0.5:22", "without a port")],
)  # fmt: skip
def test_host_addresses_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        kinds.host_ip(value)


def test_host_addresses_canonical() -> None:
    assert kinds.host_ip("FD00:0:0::5") == "fd00::5"
    assert kinds.host_ip("10.0.0.5") == "10.0.0.5"
    assert kinds.family("fd00::5") == 6 and kinds.family("10.0.0.5") == 4


def test_hostport_brackets_ipv6_only() -> None:
    assert kinds.hostport("fd00::5", 6443) == "[fd00::5]:6443"
    assert kinds.hostport("10.0.0.5", 6443) == "10.0.0.5:6443"


# -- halb validate -------------------------------------------------------------------

# the IPv4 inventory with every address IPv6 (10.0.0.N -> fd00:1::N)
INVENTORY6 = re.sub(r"10\.0\.0\.(\d+)", r"fd00:1::\1", INVENTORY)
# the IPv4 inventory with an IPv6 address beside each LB host's and m1's IPv4 one
INVENTORY_DUAL = (
    INVENTORY.replace("ip=10.0.0.11", "ip=10.0.0.11 ip6=fd00:1::11")
    .replace("ip=10.0.0.12", "ip=10.0.0.12 ip6=fd00:1::12")
    .replace("m1 ansible_host=10.0.0.21 ip=10.0.0.21", "m1 ansible_host=fd00:1::21 ip=fd00:1::21")
)


def vip6(**kw: Any) -> Callable[[dict[str, Any]], None]:
    def m(s: dict[str, Any]) -> None:
        s["vips"]["internal"] = {"address": "fd00:1::250", "interface": "eth0", **kw}

    return m


def dual(**kw: Any) -> Callable[[dict[str, Any]], None]:
    def m(s: dict[str, Any]) -> None:
        s["vips"]["internal"].update({"address6": "fd00:1::250", **kw})

    return m


def both(*fs: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def m(s: dict[str, Any]) -> None:
        for f in fs:
            f(s)

    return m


def test_ipv6_only_spec_passes(tmp_path: Path) -> None:
    code, out = run_validate(tmp_path, vip6(subnet="fd00:1::/64"), INVENTORY6)
    assert code == 0, out
    cluster = load_cluster(tmp_path / "halb.yaml")
    (v,) = cluster.vips
    assert (v.family, v.instance, v.address) == (6, "halb_internal6", "fd00:1::250")
    assert cluster.frontend("apiserver").address == "fd00:1::250"  # type: ignore[union-attr]
    assert cluster.console_url == "http://[fd00:1::250]:30880"


def test_dual_stack_spec_has_one_instance_per_family(tmp_path: Path) -> None:
    code, out = run_validate(tmp_path, dual(subnet="10.0.0.0/24", subnet6="fd00:1::/64"),
                             INVENTORY_DUAL)  # fmt: skip
    assert code == 0, out
    cluster = load_cluster(tmp_path / "halb.yaml")
    assert [(v.instance, v.address) for v in cluster.vips] == [
        ("halb_internal", "10.0.0.250"),
        ("halb_internal6", "fd00:1::250"),
    ]
    assert len({v.router_id for v in cluster.vips}) == 2
    api = cluster.frontend("apiserver")
    assert api is not None and api.addresses == ("10.0.0.250", "fd00:1::250")
    assert [b.address for b in api.backends] == ["fd00:1::21", "10.0.0.22", "10.0.0.23"]


def test_ipv4_spec_keeps_its_meaning(tmp_path: Path) -> None:
    assert run_validate(tmp_path)[0] == 0
    cluster = load_cluster(tmp_path / "halb.yaml")
    assert [(v.family, v.instance) for v in cluster.vips] == [(4, "halb_internal")]
    assert all(f.address6 is None for f in cluster.frontends)


BAD = [
    ("zone", vip6(address="fd00:1::250%eth0"), INVENTORY6, "vips.internal.address", "zone ids"),
    ("link-local", vip6(address="fe80::250"), INVENTORY6, "vips.internal.address", "link-local"),
    ("mapped", vip6(address="::ffff:10.0.0.250"), INVENTORY6, "vips.internal.address", "mapped"),
    ("brackets", vip6(address="[fd00:1::250]"), INVENTORY6, "vips.internal.address", "brackets"),
    ("multicast", vip6(address="ff02::12"), INVENTORY6, "vips.internal.address", "multicast"),
    ("anycast", vip6(address="fd00:1::"), INVENTORY6, "vips.internal.address", "anycast"),
    (
        "subnet-anycast",
        vip6(address="fd00:1:0:0:1::", subnet="fd00:1:0:0:1::/80"),
        INVENTORY6,
        "vips.internal.address",
        "fd00:1:0:0:1:: is the subnet-router anycast address of fd00:1:0:0:1::/80",
    ),
    (
        "outside-subnet",
        vip6(subnet="fd00:2::/64"),
        INVENTORY6,
        "vips.internal.address",
        "fd00:1::250 is outside vips.internal.subnet fd00:2::/64",
    ),
    (
        "subnet-family",
        vip6(subnet="10.0.0.0/24"),
        INVENTORY6,
        "vips.internal.subnet",
        "10.0.0.0/24 is IPv4 and fd00:1::250 IPv6",
    ),
    (
        "lb-outside-subnet",
        vip6(address="fd00:1:0:1::250", subnet="fd00:1:0:1::/64"),
        INVENTORY6,
        "vips.internal.subnet",
        "LB host lb1 (fd00:1::11) is outside",
    ),
    ("vip-is-host", vip6(address="fd00:1:0::21"), INVENTORY6, "vips.internal.address", "host m1"),
    (
        "address6-v4",
        dual(address6="10.0.0.251"),
        INVENTORY_DUAL,
        "vips.internal.address6",
        "not an IPv6 address",
    ),
    (
        "address6-twice",
        vip6(address6="fd00:1::251"),
        INVENTORY6,
        "vips.internal.address6",
        "already IPv6",
    ),
    (
        "subnet6-alone",
        lambda s: s["vips"]["internal"].update(subnet6="fd00:1::/64"),
        INVENTORY,
        "vips.internal.subnet6",
        "belongs to address6",
    ),
    (
        "router-id6-alone",
        lambda s: s["vips"]["internal"].update(router_id6=9),
        INVENTORY,
        "vips.internal.router_id6",
        "belongs to address6",
    ),
    (
        "router-id6-clash",
        dual(router_id=7, router_id6=7),
        INVENTORY_DUAL,
        "vips.internal.router_id6",
        "7 is already the router id of vips.internal",
    ),
    ("router-id6-range", dual(router_id6=0), INVENTORY_DUAL, "vips.internal.router_id6", "1..255"),
    (
        "auth-with-ipv6",
        both(dual(), lambda s: s.update(vrrp={"auth": {"password": "abc"}})),
        INVENTORY_DUAL,
        "vrrp.auth",
        "VRRPv3, which has no authentication",
    ),
    (
        "advert-v3-range",
        both(vip6(), lambda s: s.update(vrrp={"advert_int": 60})),
        INVENTORY6,
        "vrrp.advert_int",
        "IPv6 VIPs run VRRPv3, which allows 0.01..40.95 s",
    ),
    (
        "colocated-redirect",
        both(vip6(), lambda s: s.update(lb_hosts=["m1", "m2"])),
        INVENTORY6,
        "frontends.apiserver",
        "IPv4 only for now",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "inventory", "key", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_ipv6_spec(tmp_path: Path, mutate: Any, inventory: str, key: str, message: str) -> None:
    code, out = run_validate(tmp_path, mutate, inventory)
    assert code == 2, out
    assert f"halb.yaml: {key}" in out, out
    assert message in " ".join(out.split()), out
    assert "Traceback" not in out


BAD_HOSTS = [
    ("peer-link-local", "lb2 ansible_host=fd00:1::12 ip=fe80::12", "host lb2: ip", "link-local"),
    ("peer-zone", "lb2 ansible_host=fd00:1::12 ip=fd00:1::12%eth0", "host lb2: ip", "zone ids"),
    ("peer-brackets", "lb2 ansible_host=fd00:1::12 ip=[fd00:1::12]", "host lb2: ip", "brackets"),
    ("peer-mapped", "lb2 ansible_host=fd00:1::12 ip=::ffff:10.0.0.12", "host lb2: ip", "mapped"),
    ("peer-v4-only", "lb2 ansible_host=10.0.0.12 ip=10.0.0.12", "host lb2", "no IPv6 address"),
    ("backend-link-local", "m2 ansible_host=fd00:1::22 ip=fe80::22", "host m2: ip", "link-local"),
    ("backend-multicast", "m2 ansible_host=fd00:1::22 ip=ff02::22", "host m2: ip", "multicast"),
    (
        "same-address-spelt-apart",
        "lb2 ansible_host=fd00:1::12 ip=FD00:1:0::11",
        "host lb2: ip",
        "FD00:1:0::11 is also the address of host lb1",
    ),
]


@pytest.mark.parametrize(
    ("line", "key", "message"), [b[1:] for b in BAD_HOSTS], ids=[b[0] for b in BAD_HOSTS]
)
def test_bad_ipv6_hosts(tmp_path: Path, line: str, key: str, message: str) -> None:
    name = line.split()[0]
    inv = "\n".join(line if x.startswith(name + " ") else x for x in INVENTORY6.splitlines())
    code, out = run_validate(tmp_path, vip6(), inv + "\n")
    assert code == 2, out
    assert f"hosts.ini: {key}" in out, out
    assert message in " ".join(out.split()), out


def test_dual_stack_lb_host_without_ip6_is_refused(tmp_path: Path) -> None:
    inv = INVENTORY_DUAL.replace(" ip6=fd00:1::12", "")
    code, out = run_validate(tmp_path, dual(), inv)
    assert code == 2
    assert "hosts.ini: host lb2" in out and "VRRP unicast over IPv6 needs one" in out
    # without unicast the IPv6 instance sends multicast from the link-local address
    code, out = run_validate(
        tmp_path, both(dual(), lambda s: s.update(vrrp={"unicast": False})), inv
    )
    assert code == 0, out


def test_ipv4_ip6_is_refused(tmp_path: Path) -> None:
    # ip=IPv6 ip6=IPv4 has an address of each family, but the IPv4 instance would send
    # from `ip` and name an IPv6 unicast_peer
    inv = INVENTORY_DUAL.replace("ip=10.0.0.12 ip6=fd00:1::12", "ip=fd00:1::12 ip6=10.0.0.12")
    code, out = run_validate(tmp_path, dual(), inv)
    assert code == 2, out
    assert "hosts.ini: host lb2: ip6 10.0.0.12 is not an IPv6 address" in " ".join(out.split())


def test_duplicate_ip6_is_refused(tmp_path: Path) -> None:
    # lb2 would name its own source as its unicast_peer
    inv = INVENTORY_DUAL.replace("ip6=fd00:1::12", "ip6=fd00:1::11")
    code, out = run_validate(tmp_path, dual(), inv)
    assert code == 2, out
    assert "hosts.ini: host lb2: ip6 fd00:1::11 is also the address of host lb1" in out


def test_ipv4_lb_host_in_an_ipv6_spec_is_refused(tmp_path: Path) -> None:
    inv = INVENTORY6.replace("lb2 ansible_host=fd00:1::12 ip=fd00:1::12", "lb2 ip=10.0.0.12")
    code, out = run_validate(tmp_path, vip6(), inv)
    assert code == 2 and "host lb2" in out and "no IPv6 address" in out
