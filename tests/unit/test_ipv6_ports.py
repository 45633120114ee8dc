"""The port check per address family: which listeners `ss -Htlnp` shows stop HAProxy
binding an IPv4 or an IPv6 VIP (captured in a network namespace, and made there again)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from halb.facts.ss import parse_ss, port_conflicts
from halb.level import Level
from halb.preflight.judge import port_results

# `ss -Htlnp` in `unshare --net` (iproute2 6.1): Python listeners on :: without and with
# IPV6_V6ONLY, on 0.0.0.0, and on one IPv6 address
SS = """\
LISTEN 0      128      0.0.0.0:7003 0.0.0.0:* users:(("python3",pid=24381,fd=3))
LISTEN 0      128    [fd09::1]:7004    [::]:* users:(("python3",pid=24382,fd=3))
LISTEN 0      128            *:7001       *:* users:(("python3",pid=24379,fd=3))
LISTEN 0      128         [::]:7002    [::]:* users:(("python3",pid=24380,fd=3))
"""
V4, V6 = "10.9.0.1", "fd09::1"
# what a bind of each VIP on each port met (EADDRINUSE: True), as tried with HAProxy 2.6
# (`bind 10.9.0.1:7001`, `bind [fd09::1]:7001`, ...) and Python alike
TAKEN = {
    (V4, 7001): True, (V6, 7001): True,  # *: both families
    (V4, 7002): False, (V6, 7002): True,  # [::] v6only: IPv6 only
    (V4, 7003): True, (V6, 7003): False,  # 0.0.0.0: IPv4 only
    (V4, 7004): False, (V6, 7004): True,  # the IPv6 VIP itself
}  # fmt: skip


def test_parse_keeps_each_wildcard_apart() -> None:
    assert [(x.address, x.port) for x in parse_ss(SS)] == [
        ("0.0.0.0", 7003),
        ("fd09::1", 7004),
        ("*", 7001),
        ("::", 7002),
    ]


@pytest.mark.parametrize(("vip", "port"), sorted(TAKEN))
def test_a_listener_blocks_the_vips_of_its_family(vip: str, port: int) -> None:
    assert bool(port_conflicts(parse_ss(SS), vip, port)) is TAKEN[(vip, port)]


def test_findings_write_ipv6_in_brackets() -> None:
    fronts = [("apiserver", V6, 7002), ("console", V6, 7003), ("api4", V4, 7002)]
    taken, free, four = port_results("lb1", parse_ss(SS), fronts)
    assert taken.level is Level.FAIL and taken.bad_input
    assert taken.message.startswith(
        "python3 on lb1 already listens on [::]:7002, so HAProxy cannot bind [fd09::1]:7002: "
    )
    assert (free.level, free.message) == (Level.OK, "console [fd09::1]:7003 free")
    assert (four.level, four.message) == (Level.OK, "api4 10.9.0.1:7002 free")


# in the namespace: listen on each, print what ss shows, then try to bind each VIP
TRY = """
import socket, subprocess, sys
def sock(addr):
    return socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
keep = []
for spec in sys.argv[1].split():
    addr, port, v6only = spec.split(",")
    s = sock(addr)
    if ":" in addr:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    s.bind((addr, int(port)))
    s.listen()
    keep.append(s)
print("@ss")
print(subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout)
print("@bind")
for spec in sys.argv[2].split():
    addr, port = spec.rsplit(",", 1)
    s = sock(addr)
    try:
        s.bind((addr, int(port)))
        print(spec, "free")
    except OSError:
        print(spec, "taken")
    s.close()
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ss"),
    reason="needs root, unshare and ss",
)
def test_the_table_holds_in_a_namespace() -> None:
    """Listeners made in a fresh network namespace: what ss shows, judged, is what a bind
    of each VIP there meets."""
    listen = ["::,7001,0", "::,7002,1", "0.0.0.0,7003,0", f"{V6},7004,1"]
    binds = [f"{vip},{port}" for vip, port in sorted(TAKEN)]
    script = (
        "ip link set lo up && ip link add d0 type veth peer name d1 && ip link set d0 up && "
        f"ip addr add {V4}/24 dev d0 && ip addr add {V6}/64 dev d0 nodad && "
        'exec python3 -c "$1" "$2" "$3"'
    )
    p = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", TRY, " ".join(listen), " ".join(binds)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    ss_text, bind_text = p.stdout.split("@ss\n", 1)[1].split("@bind\n", 1)
    met = dict(line.rsplit(" ", 1) for line in bind_text.splitlines())
    listeners = parse_ss(ss_text)
    assert {x.address for x in listeners} == {"*", "::", "0.0.0.0", V6}, ss_text
    for vip, port in sorted(TAKEN):
        assert (met[f"{vip},{port}"] == "taken") is TAKEN[(vip, port)], (vip, port, met)
        assert bool(port_conflicts(listeners, vip, port)) is TAKEN[(vip, port)], (vip, port)
