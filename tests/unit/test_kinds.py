"""Each kind of value that may reach a rendered file: what passes, what is refused."""

from __future__ import annotations

import ipaddress

import pytest

from halb import kinds


@pytest.mark.parametrize(
    "name",
    ["lb1", "node-1", "kube_master_1", "m1.example.com", "10.0.0.1", "2001:db8::1", "a" * 63],
)
def test_host_names_that_pass(name: str) -> None:
    assert kinds.host_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "..", "../x", "/abs", "a b", "a\nb", "lb$(id)", "a`b`", "a;b", "a#b", "-a", "a-",
     "a..b", "a" * 64, ".".join(["a" * 63] * 4) + "x", "é", "a{b}", "fe80::1%eth0\nx"],
)  # fmt: skip
def test_host_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not valid"):
        kinds.host_name(name)


def test_host_name_not_a_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        kinds.host_name(["lb1"])


@pytest.mark.parametrize("name", ["kube-master", "k8s_cluster", "etcd", "lb.v2"])
def test_group_names(name: str) -> None:
    assert kinds.group_name(name) == name


@pytest.mark.parametrize("name", ["a b", "a:b", "a\n", "", "x" * 129, "$(id)"])
def test_group_names_refused(name: str) -> None:
    with pytest.raises(ValueError):
        kinds.group_name(name)


@pytest.mark.parametrize("name", ["stats", "prometheus", "a b", "a\nb", "-x", "x" * 33, ""])
def test_frontend_names_refused(name: str) -> None:
    with pytest.raises(ValueError):
        kinds.proxy_name(name)


@pytest.mark.parametrize("name", ["eth0", "ens192", "bond0.100", "enp3s0f1", "br-lan", "a" * 15])
def test_interfaces(name: str) -> None:
    assert kinds.interface(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a" * 16, "eth/0", "eth:0", "eth 0", "eth0\n", "eth#0", "eth!0",
             'eth"0', "eth{0", "é"],
)  # fmt: skip
def test_interfaces_refused(name: str) -> None:
    with pytest.raises(ValueError, match="interface"):
        kinds.interface(name)


@pytest.mark.parametrize(
    "value", ["10.0.0.1/24", "10.0.0.1\n", " 10.0.0.1", "010.0.0.1", "fe80::1%eth0", "x", ""]
)
def test_addresses_refused(value: str) -> None:
    with pytest.raises(ValueError):
        kinds.address(value)


def test_address_is_canonical() -> None:
    assert kinds.address("2001:DB8:0::1") == "2001:db8::1"
    assert kinds.ipv4("10.0.0.1") == "10.0.0.1"
    with pytest.raises(ValueError):
        kinds.ipv4("::1")


@pytest.mark.parametrize(
    ("value", "why"),
    [("0.0.0.0", "cannot"), ("255.255.255.255", "cannot"), ("224.0.0.18", "multicast"),
     ("127.0.0.1", "loopback"), (True, "string"), (167772161, "string"), ("10.0.0", "IPv4")],
)  # fmt: skip
def test_vips_refused(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        kinds.vip_address(value)


def test_vip_passes() -> None:
    assert kinds.vip_address("10.0.0.250") == ipaddress.IPv4Address("10.0.0.250")


@pytest.mark.parametrize(
    ("value", "ms"), [("2s", 2000), ("500ms", 500), ("1500", 1500), ("1m", 60000), ("1d", 8.64e7)]
)
def test_durations(value: str, ms: float) -> None:
    assert kinds.duration_ms(value) == ms


@pytest.mark.parametrize(
    "value", ["0", "2 s", "2s\n", "-1s", "1.5s", "2x", "", "25h", "9999999999"]
)
def test_durations_refused(value: str) -> None:
    with pytest.raises(ValueError):
        kinds.duration_ms(value)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_floats_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        kinds.finite(value)


@pytest.mark.parametrize("pw", ["", "a b", "a\nb", "a#b", "a!b", "a$b", 'a"b', "a'b", "a{b", "é"])
def test_passwords_refused_without_echo(pw: str) -> None:
    with pytest.raises(ValueError) as e:
        kinds.vrrp_password(pw)
    assert pw == "" or pw not in str(e.value)


def test_shown_is_one_clipped_line() -> None:
    s = kinds.shown("a\nb" * 100)
    assert "\n" not in s and len(s) == kinds.CLIP and s.endswith("…")
    assert kinds.clip("plain") == "plain"
    assert kinds.clip("two\nlines") == "'two\\nlines'"


def test_shown_describes_an_integer_too_long_to_print() -> None:
    for n in (10**5000, -(10**4400), int("f" * 3700, 16)):
        text = kinds.shown(n)
        assert text.startswith("<a number of about ") and len(text) < 60


def test_shown_clips_before_quoting() -> None:
    import time

    start = time.monotonic()
    for _ in range(1000):
        kinds.shown("x" * 3_000_000)
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    "value",
    ["ansible_ssh_pass=Sekr3t", "ansible_become_password = Sekr3t", "x token='Sekr3t'",
     'vault_pass="Sekr3t', "MY_API_KEY=Sekr3t"],
)  # fmt: skip
def test_shown_redacts_secret_settings(value: str) -> None:
    assert "Sekr3t" not in kinds.shown(value)
    assert "Sekr3t" not in kinds.shown([value])
    assert "Sekr3t" not in kinds.shown({"password": value})


@pytest.mark.parametrize("value", ["\x1b[2J", "a\nok: b", "\u202egnp", "\x9b31m", "\u2028"])
def test_shown_and_one_line_escape_control_characters(value: str) -> None:
    assert kinds.shown(value).isprintable()
    assert kinds.one_line("x " + value * 1000).isprintable()


@pytest.mark.parametrize("name", ["all", "default", "lo"])
def test_reserved_interface_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot carry a VIP"):
        kinds.interface(name)


@pytest.mark.parametrize("value", ["x" * 101, "1" * 5000, "::" + "f" * 200])
def test_long_address_is_refused_before_ipaddress_reads_it(value: str) -> None:
    for check in (kinds.address, kinds.ipv4, kinds.vip_address):
        with pytest.raises(ValueError):
            check(value)
