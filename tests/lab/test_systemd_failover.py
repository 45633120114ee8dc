"""HAProxy's exit on LB hosts that boot systemd: the drop-in's ExecStopPost tells keepalived
at once (its tracked exit file), the VIP moves, and systemd's restart brings it back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from halb.lab import Lab
from halb.lab.topology import Init
from halb.paths import HAPROXY_EXIT_FILE

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def deployed(lab_factory: Any) -> Lab:
    lab: Lab = lab_factory(lbs=2, masters=1, nodes=1, init=Init.SYSTEMD)
    r = lab.run("taskbox", ["halb", "deploy", "-c", str(lab.spec)], timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return lab


def main_pid(lab: Lab, host: str) -> str:
    argv = ["systemctl", "show", "-p", "MainPID", "--value", "haproxy"]
    return lab.run(host, argv, timeout=30).stdout.strip()


def test_haproxy_exit_moves_the_vip_through_the_exit_file(deployed: Lab) -> None:
    lab = deployed
    js = lab.dir / "drill-systemd.json"
    argv = ["halb", "test-failover", "-c", str(lab.spec), "--fault", "haproxy"]
    r = lab.run("taskbox", [*argv, "--rate", "50", "--json", str(js)], timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    (rnd,) = json.loads(js.read_text())["rounds"]
    f = rnd["figures"]
    target = rnd["target"]
    assert f["vip_moved"] and f["new_holder"] != target, f
    assert all(len(h) == 1 for h in f["holders_end"].values()), f["holders_end"]
    # keepalived left MASTER on the file systemd wrote, not on its once-a-second check:
    # its FAULT comes before the check's first failure (keepalived's own log order)
    journal = lab.run(target, ["journalctl", "-u", "keepalived", "--no-pager"], timeout=30)
    lines = [ln for ln in journal.stdout.splitlines() if "FAULT" in ln or "chk_haproxy" in ln]
    fault = next(i for i, ln in enumerate(lines) if "Entering FAULT STATE" in ln)
    failed = [i for i, ln in enumerate(lines) if "chk_haproxy` now returning 1" in ln]
    assert not failed or fault < failed[0], "\n".join(lines)
    # HAProxy runs again (restarted by systemd or by the drill) and says so in the file
    assert main_pid(lab, target) not in ("", "0")
    state = lab.run(target, ["cat", HAPROXY_EXIT_FILE], timeout=30)
    assert state.stdout.strip() == "0"
