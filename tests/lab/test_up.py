"""`halb up` end to end on the lab, through the lab's KubeSphere 2.1 installer: halb
launches it as the real one (`cd scripts && ./install.sh multi-node`), answers its
prerequisites question, and its stages check, through the VIP, what the real ones need
(the config names the VIP, VIP:6443 answers /readyz, the console answers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from halb.lab import Lab

pytestmark = pytest.mark.lab


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
    assert "command" not in (lab.dir / "halb.yaml").read_text()  # the installer's own launch
    return lab


def runs(lab: Lab) -> int:
    """Finished runs of the installer: each writes one log in the lab folder."""
    return sum(
        "Welcome to KubeSphere!" in p.read_text() for p in lab.dir.glob("halb-install-*.log")
    )


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
    for stage in (
        "1. Initiating Environment",
        "2. Installing Kubernetes",
        "3. Installing KubeSphere",
    ):
        assert stage in log
    assert "# halb answers 'yes' to the prerequisites question" in log
    assert "exit code 0" in log and "succeeded" in log
    install = doc["stages"][-1]
    assert "all 3 stages passed" in install["detail"]
    assert f"http://{lab.vip_external}:30880 answers (HTTP 200)" in install["detail"]

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


def test_failed_stage_stops_at_install_then_resumes_there(lab_up: Lab) -> None:
    knob = lab_up.dir / "lab-fail-stage"
    knob.write_text("2\n")  # the lab installer's stage 2 fails, and its script exits 0
    try:
        code, doc, output = up(lab_up, "--reinstall")
        assert code == 1, output
        last = doc["stages"][-1]
        assert last["stage"] == "install" and last["status"] == "failed"
        assert "at stage 2/3 Installing Kubernetes" in last["detail"]
        assert "fatal: [master1]: FAILED!" in last["detail"]
        assert "`halb up` resumes at install" in last["next"]
    finally:
        knob.unlink()
    before = runs(lab_up)
    code, doc, output = up(lab_up)  # no --reinstall: the failed install runs again
    assert code == 0, output
    assert stages(doc)["deploy"] == "unchanged" and stages(doc)["install"] == "ok"
    assert runs(lab_up) == before + 1
