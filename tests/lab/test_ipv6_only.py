"""An IPv6-only lab (`--ip-family 6`: every host has only a unique-local IPv6 address, in
the lab's namespaces only): halb reaches the hosts by SSH over IPv6, keepalived runs
VRRPv3 over IPv6, HAProxy binds [VIP]:port and checks its backends over IPv6, and
`halb up` runs end to end. The lab has no installer: KubeSphere 2.1 installs Kubernetes
1.16, which cannot run IPv6-only, and write-config refuses it."""

from __future__ import annotations

from typing import Any

import pytest

from halb.lab import Lab
from tests.lab.test_ipv6 import halb

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(lab_factory: Any) -> Lab:
    return lab_factory(lbs=2, masters=2, nodes=2, ip_family="6")


def test_hosts_have_ipv6_only(lab: Lab) -> None:
    for h in lab.plan.hosts:
        shown = lab.run(h.name, ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f" {h.address}/64 " in shown and " inet " not in shown, shown
    assert lab.vip_internal.startswith("fd25:250:") and ":" in lab.address("lb1")


def test_up_over_ipv6_only(lab: Lab) -> None:
    rc, doc, out = halb(lab, "up")
    assert rc == 0, out
    stages = {s["stage"]: s["status"] for s in doc["stages"]}
    assert stages == {
        "preflight": "ok",
        "render": "ok",
        "deploy": "changed",
        "verify": "ok",
        "write-config": "skipped",
        "install": "ok",
    }, stages

    for url, want in (
        (
            f"https://[{lab.vip_internal}]:6443/halb-lab/name",
            {f"apiserver {m}" for m in lab.masters},
        ),
        (f"http://[{lab.vip_external}]:30880/", {f"console {h}" for h in lab.masters + lab.nodes}),
    ):
        seen = {
            lab.run("taskbox", ["curl", "-gsk", "-m", "3", url]).stdout.strip() for _ in range(16)
        }
        assert seen == want, (url, seen)

    rc, status, out = halb(lab, "status")
    assert rc == 0, out
    assert {(v["name"], v["family"]) for v in status["vips"]} == {("internal", 6), ("external", 6)}
    assert all(len(v["holders"]) == 1 for v in status["vips"]), status["vips"]
    for h in status["hosts"]:
        assert set(h["vrrp"]) == {"halb_internal6", "halb_external6"}, h["vrrp"]
        assert all(b["address"].startswith("[fd25:250:") for b in h["backends"]), h["backends"]

    rc, probe, out = halb(lab, "probe")
    assert rc == 0, out
    for fe in probe["frontends"]:
        assert fe["through_vip"]["family"] == 6 and fe["through_vip"]["healthy"], fe
        assert fe["through_vip6"] is None
        assert all(b["family"] == 6 and b["healthy"] for b in fe["backends"]), fe


def test_write_config_refuses_kubesphere_21_for_an_ipv6_endpoint(lab: Lab) -> None:
    common = lab.dir / "conf" / "common.yaml"
    before = common.read_bytes()
    p = lab.run(
        "taskbox",
        ["halb", "write-config", "--installer", "kubesphere", "-c", str(lab.spec), str(common)],
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert "KubeSphere 2.1 installs Kubernetes 1.16" in p.stderr
    assert common.read_bytes() == before
