"""`halb up` end to end on the lab, with a test script as the installer: it checks that the
written installer config names the VIP and that VIP:6443 answers, then exits 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab

INSTALL_CHECK = """#!/bin/sh
# stands in for the installer: the config must name the VIP and the VIP must answer
set -e
grep -q "address: {vip}" conf/common.yaml
grep -q 'apiserver_loadbalancer_domain_name: "lb.kubesphere.local"' conf/common.yaml
body=$(curl -sk --max-time 5 https://{vip}:6443/readyz)
[ "$body" = ok ]
echo "installer ran: readyz=$body"
echo run >> install-runs.txt
"""


def up(lab: Lab, *args: str) -> tuple[int, dict[str, Any], str]:
    cp = lab.run(
        "taskbox",
        ["halb", "up", "--json", "-c", str(lab.dir / "halb.yaml"), *args],
        timeout=180,
    )
    doc = json.loads(cp.stdout) if cp.stdout.strip().startswith("{") else {}
    return cp.returncode, doc, cp.stdout + cp.stderr


def stages(doc: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in doc["stages"]}


@pytest.fixture(scope="module")
def lab_up(lab: Lab) -> Lab:
    script = lab.dir / "install-check.sh"
    script.write_text(INSTALL_CHECK.format(vip=lab.vip_internal))
    script.chmod(0o755)
    spec = lab.dir / "halb.yaml"
    text = spec.read_text()
    assert 'command: "true"' in text
    spec.write_text(text.replace('command: "true"', "command: ./install-check.sh"))
    return lab


def runs(lab: Lab) -> int:
    p = Path(lab.dir / "install-runs.txt")
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_up_completes_then_resumes_without_changes(lab_up: Lab) -> None:
    lab = lab_up
    code, doc, output = up(lab)
    assert code == 0, output
    assert stages(doc) == {
        "preflight": "ok",
        "render": "ok",
        "deploy": "changed",
        "verify": "ok",
        "write-config": "changed",
        "install": "ok",
    }
    assert runs(lab) == 1
    assert f"address: {lab.vip_internal}" in (lab.dir / "conf/common.yaml").read_text()
    log = next(lab.dir.glob("halb-install-*.log")).read_text()
    assert "installer ran: readyz=ok" in log

    code, doc, output = up(lab)
    assert code == 0, output
    assert stages(doc) == {
        "preflight": "ok",
        "render": "ok",
        "deploy": "unchanged",
        "verify": "ok",
        "write-config": "unchanged",
        "install": "skipped",
    }
    assert runs(lab) == 1  # the install stage runs again only when asked

    code, doc, output = up(lab, "--reinstall")
    assert code == 0, output
    assert stages(doc)["install"] == "ok"
    assert runs(lab) == 2


def test_until_stops_after_the_named_stage(lab_up: Lab) -> None:
    code, doc, output = up(lab_up, "--until", "deploy")
    assert code == 0, output
    assert list(stages(doc)) == ["preflight", "render", "deploy"]


def test_until_unknown_stage_is_bad_input(lab_up: Lab) -> None:
    code, _, output = up(lab_up, "--until", "deplyo")
    assert code == 2
    assert "--until deplyo: not a stage" in output


def test_failed_install_stops_with_next_step(lab_up: Lab) -> None:
    spec = lab_up.dir / "halb.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("command: ./install-check.sh", "command: exit 7"))
    try:
        code, doc, output = up(lab_up, "--reinstall")
        assert code == 1, output
        last = doc["stages"][-1]
        assert last["stage"] == "install" and last["status"] == "failed"
        assert "exited 7" in last["detail"] and "--reinstall" in last["next"]
    finally:
        spec.write_text(text)
