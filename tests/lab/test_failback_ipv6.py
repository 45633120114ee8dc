"""Failback of IPv6 VIPs through the handover bridge, on a dual-stack lab under client load
through the IPv6 VIPs, with halb not running.

An IPv6 VIP used to come back as keepalived preempts, at once and without the bridge (2-3 s
before the IPv4 VIPs, docs/ipv6.md). Now failback.sh treats it as an IPv4 one: keepalived
tracks its returning flag, the agent hears the holder's VRRPv3 adverts over IPv6 (an ip6
table), bridges the move with an ip6 rule to the holder's address, and the old holder
keeps the VIP on lo for the connections still in flight.

Asserted for `link` in both profiles and `graceful` in `fast`: no request through the IPv6 VIPs
sent after the first outage fails, lb1 holds both IPv6 VIPs again within the documented
time, through the bridge, and lb2 ends a standby (flag 1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from halb.lab import Lab
from halb.services import start_argv
from tests.lab.test_failback import (
    FAULTS,
    GONE,
    GRACE,
    PIDS,
    RETURN_PARTS,
    SLACK,
    client,
    failback_failures,
)

pytestmark = pytest.mark.lab

FLAGS = "cd /etc/keepalived/halb && cat returning-halb_internal6 returning-halb_external6"


@pytest.fixture(scope="module")
def dual(lab_factory) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = lab_factory(lbs=2, masters=1, nodes=1, ip_family="dual")
    # `link` sets eth0 down: Linux would delete lb1's IPv6 addresses, and nothing adds
    # them back (the drill's `link` fault keeps them the same way)
    lab.run("lb1", ["sysctl", "-qw", "net.ipv6.conf.eth0.keep_addr_on_down=1"], check=True)
    yield lab


def vips6(lab: Lab) -> list[str]:
    assert lab.plan.vip_internal6 and lab.plan.vip_external6
    return [lab.plan.vip_internal6, lab.plan.vip_external6]


def holders6(lab: Lab) -> dict[str, list[str]]:
    """{IPv6 VIP: the LB hosts that have it on eth0 now}."""
    argv = ["ip", "-o", "-6", "addr", "show", "dev", "eth0"]
    seen = {h: lab.run(h, argv).stdout for h in lab.lbs}
    return {v: [h for h in lab.lbs if f" inet6 {v}/" in seen[h]] for v in vips6(lab)}


def wait6(lab: Lab, want: str, limit: float) -> float | None:
    """Wall time when WANT holds both IPv6 VIPs alone (None: not within LIMIT s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(h == [want] for h in holders6(lab).values()):
            return time.time()
        time.sleep(0.1)
    return None


@pytest.fixture(scope="module", params=["default", "fast"])
def profile(request: pytest.FixtureRequest, dual: Lab) -> str:
    data = yaml.safe_load(dual.spec.read_text())
    data["vrrp"] = {"profile": request.param, "failback_grace": GRACE}
    dual.spec.write_text(yaml.safe_dump(data, sort_keys=False))
    r = dual.run("taskbox", ["halb", "deploy", "-c", str(dual.spec)], timeout=240)
    assert r.returncode == 0, r.stderr
    assert wait6(dual, "lb1", 30), holders6(dual)
    return str(request.param)


# the IPv6 path is the same in both profiles: `link` in each, `graceful` in `fast`
@pytest.mark.parametrize(
    ("profile", "fault"),
    [("default", "link"), ("fast", "link"), ("fast", "graceful")],
    indirect=["profile"],
)
def test_ipv6_failback_loses_no_request(dual: Lab, profile: str, fault: str) -> None:
    assert wait6(dual, "lb1", 30), holders6(dual)
    stop = dual.dir / "failback6.stop"
    stop.unlink(missing_ok=True)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    internal, external = vips6(dual)
    proc = client(dual, internal, external, stop)
    inject, restore = FAULTS[fault]
    try:
        time.sleep(1.0)
        dual.run("lb1", ["sh", "-c", inject, PIDS], check=True)
        moved = wait6(dual, "lb2", 20)
        time.sleep(0.5)
        back = time.time()
        if restore:
            dual.run("lb1", ["sh", "-c", restore], check=True)
        else:
            dual.run("lb1", ["timeout", "20", "sh", "-c", GONE, PIDS], check=True)
            dual.run("lb1", start_argv("keepalived"), check=True, timeout=60)
        limit = RETURN_PARTS[profile] + SLACK
        home = wait6(dual, "lb1", limit + 20)
        time.sleep(GRACE + 1.0)
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=60)
        dual.run("lb1", ["sh", "-c", FAULTS["link"][1]])  # never leave lb1 cut off
    res = json.loads(out)
    log = dual.run("lb1", ["cat", "/var/log/halb/notify.log"]).stdout.split(since, 1)[-1]
    tail = "\n".join(log.splitlines()[-30:])
    assert moved is not None, f"{fault}: the IPv6 VIPs never moved to lb2\n{tail}"
    assert home is not None, (holders6(dual), tail)
    assert home - back <= limit, (round(home - back, 2), tail)
    assert min(res["ok"].values()) > 50, res["ok"]
    assert failback_failures(res, back, home) == [], tail
    assert "halb_internal6: bridge to the holder" in log, tail
    assert "halb_external6: bridge to the holder" in log, tail
    flags = {h: dual.run(h, ["sh", "-c", FLAGS]).stdout.split() for h in dual.lbs}
    assert flags == {"lb1": ["0", "0"], "lb2": ["1", "1"]}, tail
    left = dual.run("lb1", ["nft", "list", "table", "ip6", "halb_failback"])
    assert left.returncode != 0, left.stdout  # the bridge is down again
