"""The guide's shape (masters carry the VIP beside the apiserver, no [lb] group) on hosts
that boot systemd: `halb up` end to end, HAProxy's exit and systemd's restart of it with
the redirect following, and `halb undeploy` leaving the units stopped and disabled."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from halb.lab import Lab
from halb.lab.topology import Init
from halb.paths import DEPLOYED_FILES, MANAGED_MARK, REDIRECT_SCRIPT, REDIRECT_TABLE
from tests.lab.through_vip import answers, assert_public_ports_balanced, redirect_vips

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def sdsix(lab_factory) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = lab_factory(lbs=0, masters=2, nodes=1, init=Init.SYSTEMD)
    t0 = time.monotonic()
    cp = lab.run("taskbox", ["halb", "up", "-c", str(lab.dir / "halb.yaml")], timeout=900)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    print(f"halb up on systemd masters: {time.monotonic() - t0:.0f} s")
    yield lab


def unit(lab: Lab, host: str, name: str, prop: str) -> str:
    return lab.run(host, ["systemctl", "show", "-p", prop, "--value", name]).stdout.strip()


def test_up_end_to_end_on_systemd_masters(sdsix: Lab) -> None:
    lab = sdsix
    assert_public_ports_balanced(lab, 10, 15)
    for m in lab.masters:
        assert set(redirect_vips(lab, m)) == {lab.vip_internal, lab.vip_external}
        for name in ("haproxy", "keepalived"):
            assert unit(lab, m, name, "ActiveState") == "active", (m, name)
        # systemd itself takes the VIPs out of the redirect as HAProxy exits
        assert REDIRECT_SCRIPT in unit(lab, m, "haproxy", "ExecStopPost")


def test_haproxy_killed_systemd_restarts_it_and_the_redirect_follows(sdsix: Lab) -> None:
    lab = sdsix
    h = lab.vip_holders()[lab.vip_internal]
    assert len(h) == 1, h
    holder = h[0]
    pid = unit(lab, holder, "haproxy", "MainPID")
    t0 = time.monotonic()
    lab.run(holder, ["kill", "-9", pid], check=True)
    gone = None
    while time.monotonic() - t0 < 5:
        if not redirect_vips(lab, holder):
            gone = time.monotonic() - t0
            break
        time.sleep(0.01)
    assert gone is not None, "the redirect stayed after HAProxy exited"
    api = answers(lab, "taskbox", f"https://{lab.vip_internal}:6443/halb-lab/name", 4)
    assert not any(a.startswith("ERR") for a in api), api
    # Restart=always, RestartSec=2s: systemd starts it again and keepalived's check puts
    # the VIPs back in the redirect; the VIP never moved
    back = None
    while time.monotonic() - t0 < 30:
        if set(redirect_vips(lab, holder)) == {lab.vip_internal, lab.vip_external}:
            back = time.monotonic() - t0
            break
        time.sleep(0.05)
    assert back is not None, "the redirect did not come back after systemd's restart"
    assert unit(lab, holder, "haproxy", "MainPID") not in ("0", pid)
    assert lab.vip_holders()[lab.vip_internal] == [holder]
    print(f"systemd: redirect dropped {gone * 1000:.0f} ms after kill -9, back {back:.1f} s")


def test_undeploy_stops_and_disables_the_units(sdsix: Lab) -> None:
    lab = sdsix

    def undeploy() -> dict[str, Any]:
        cp = lab.run("taskbox", ["halb", "undeploy", "--json", "-c", str(lab.spec)], timeout=300)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        return dict(json.loads(cp.stdout))

    doc = undeploy()
    assert doc["changed"] is True
    for m in lab.masters:
        assert doc["hosts"][m]["stop"] == ["keepalived", "haproxy"], doc["hosts"][m]
        for name in ("haproxy", "keepalived"):
            assert unit(lab, m, name, "ActiveState") == "inactive", (m, name)
            assert unit(lab, m, name, "UnitFileState") == "disabled", (m, name)
        assert "90-halb.conf" not in unit(lab, m, "haproxy", "DropInPaths")
        assert REDIRECT_TABLE not in lab.run(m, ["nft", "list", "tables"]).stdout
        for path in DEPLOYED_FILES:
            assert MANAGED_MARK not in lab.run(m, ["cat", path]).stdout, (m, path)
    assert lab.vip_holders() == {lab.vip_internal: [], lab.vip_external: []}
    assert undeploy()["changed"] is False
