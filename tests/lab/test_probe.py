"""`halb probe` on a real lab: fake apiservers and consoles, before and after deploy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab


def _probe(lab: Lab, *extra: str) -> tuple[int, dict[str, Any]]:
    argv = ["halb", "probe", "--json", "--timeout", "1", "-c", str(lab.spec), *extra]
    p = lab.run("taskbox", argv, timeout=60)
    assert p.stdout, p.stderr
    return p.returncode, json.loads(p.stdout)


def _fe(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in doc["frontends"] if f["name"] == name)


def _status(fe: dict[str, Any]) -> dict[str, str]:
    return {b["name"]: b["status"] for b in fe["backends"]}


@pytest.fixture
def master2_not_ready(lab: Lab) -> Iterator[None]:
    lab.set_readyz("master2", 500)
    try:
        yield
    finally:
        lab.set_readyz("master2", None)


def test_one_master_not_ready_before_deploy(lab: Lab, master2_not_ready: None) -> None:
    rc, doc = _probe(lab)
    api, console = _fe(doc, "apiserver"), _fe(doc, "console")
    assert _status(api) == {"master1": "ready", "master2": "not_ready"}
    m2 = next(b for b in api["backends"] if b["name"] == "master2")
    assert m2["http_status"] == 500 and m2["address"] == lab.address("master2")
    assert set(_status(console).values()) == {"ready"}
    assert {b["name"] for b in console["backends"]} >= {"node1", "node2"}
    # Nothing deployed: nobody holds the VIPs.
    for fe, vip in ((api, lab.vip_internal), (console, lab.vip_external)):
        assert fe["through_vip"]["address"] == vip
        assert not fe["through_vip"]["connected"] and not fe["through_vip"]["healthy"]
        assert fe["level"] == "fail"
    assert rc == 1 and doc["exit_status"] == 1


def test_anonymous_auth_off_is_reachable_not_down(lab: Lab) -> None:
    lab.set_readyz("master1", 401)
    try:
        _, doc = _probe(lab)
    finally:
        lab.set_readyz("master1", None)
    api = _fe(doc, "apiserver")
    m1 = next(b for b in api["backends"] if b["name"] == "master1")
    assert m1["status"] == "auth_required" and m1["healthy"] and m1["http_status"] == 401
    assert api["healthy_backends"] == 2


def test_through_vip_after_deploy(lab: Lab, master2_not_ready: None) -> None:
    d = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=180)
    assert d.returncode == 0, d.stderr + d.stdout
    rc, doc = _probe(lab)
    api, console = _fe(doc, "apiserver"), _fe(doc, "console")
    assert _status(api) == {"master1": "ready", "master2": "not_ready"}
    assert api["through_vip"]["status"] == "ready" and api["through_vip"]["http_status"] == 200
    assert console["through_vip"]["status"] == "ready"
    assert api["level"] == "warn" and "master2 not ready" in api["message"]
    assert rc == 0 and doc["ok"] is True
