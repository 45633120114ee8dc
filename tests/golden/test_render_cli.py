"""`halb render -o DIR --check` writes one directory per LB host with the right modes and
reports each validator; a file a validator rejects is reported with the tool's message."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.checkconf import haproxy_check, keepalived_check
from halb.cli import app

CASE = Path(__file__).parent / "cases" / "pass-auth"
runner = CliRunner()
tools = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("keepalived") is None or os.geteuid() != 0,
    reason="needs haproxy, keepalived and root",
)


@tools
def test_render_check_writes_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["render", "-c", str(CASE / "halb.yaml"), "-o", str(out), "--check"])
    assert r.exit_code == 0, r.output
    assert r.output.count(" ok") == 4  # two hosts, two validators
    conf = out / "lb1/etc/keepalived/keepalived.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # holds the VRRP password
    script = out / "lb1/etc/keepalived/halb/check_haproxy.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert "Vr7pass" not in r.output


@tools
def test_validators_report_the_tools_own_message(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("global\n    no-such-keyword 1\n")
    h = haproxy_check("lbX", cfg)
    assert not h.ok and "no-such-keyword" in h.output
    etc = tmp_path / "etc-keepalived"
    etc.mkdir()
    (etc / "keepalived.conf").write_text(
        "vrrp_instance x {\n    interface eth0\n    virtual_router_id 300\n}\n"
    )
    k = keepalived_check("lbX", etc)
    assert not k.ok and "keepalived -t exit" in k.output
