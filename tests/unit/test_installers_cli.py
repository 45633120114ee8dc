"""`halb write-config` and `halb install` through the real CLI and a real halb.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.cli import app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
runner = CliRunner()


def make_cluster(tmp_path: Path, installer: str) -> Path:
    shutil.copy(FIXTURES / "hosts.ini", tmp_path / "hosts.ini")
    (tmp_path / "conf").mkdir()
    shutil.copy(FIXTURES / "kubesphere-common.yaml", tmp_path / "conf" / "common.yaml")
    spec = tmp_path / "halb.yaml"
    spec.write_text(
        "cluster: test-ha\n"
        "inventory: hosts.ini\n"
        "vips:\n"
        "  internal: {address: 10.77.0.253, interface: eth0}\n"
        "  external: {address: 10.77.0.254, interface: eth0}\n"
        f"installer: {installer}\n"
    )
    return spec


KS = "{kind: kubesphere, config: conf/common.yaml, domain: lb.halb.test}"


def test_write_config_dry_run_json_writes_nothing(tmp_path: Path) -> None:
    spec = make_cluster(tmp_path, KS)
    before = (tmp_path / "conf" / "common.yaml").read_text()
    r = runner.invoke(app, ["write-config", "-c", str(spec), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["changed"], doc["written"], doc["backup"]) == (True, False, None)
    assert "+  address: 10.77.0.253\n+  port: 6443\n" in doc["diff"]
    assert "+  - 10.77.0.254\n+  - lb.halb.test\n" in doc["diff"]
    assert (tmp_path / "conf" / "common.yaml").read_text() == before


def test_write_config_writes_once(tmp_path: Path) -> None:
    spec = make_cluster(tmp_path, KS)
    r = runner.invoke(app, ["write-config", "-c", str(spec), "--diff"])
    assert r.exit_code == 0, r.output
    assert '+apiserver_loadbalancer_domain_name: "lb.halb.test"' in r.stdout
    assert "updated (backup:" in r.stdout
    assert len(list((tmp_path / "conf").glob("common.yaml.halb-bak-*"))) == 1
    r = runner.invoke(app, ["write-config", "-c", str(spec)])
    assert r.exit_code == 0 and "already up to date" in r.stdout
    assert len(list((tmp_path / "conf").glob("common.yaml.halb-bak-*"))) == 1


def test_write_config_other_installer_and_path_with_warning(tmp_path: Path) -> None:
    spec = make_cluster(tmp_path, KS)
    kk = tmp_path / "cluster.yaml"
    text = (FIXTURES / "kubekey-cluster.yaml").read_text()
    kk.write_text(text.replace('internalLoadbalancer: ""', "internalLoadbalancer: haproxy"))
    r = runner.invoke(app, ["write-config", "-c", str(spec), "--installer", "kubekey", str(kk)])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "internalLoadbalancer" in r.stderr
    assert 'address: "10.77.0.253"' in kk.read_text()


def test_write_config_for_a_command_installer_needs_a_kind(tmp_path: Path) -> None:
    spec = make_cluster(tmp_path, "{kind: command, command: 'true'}")
    plain = tmp_path / "vars.yml"
    plain.write_text("some_var: 1\n")
    r = runner.invoke(app, ["write-config", "-c", str(spec), str(plain)])
    assert r.exit_code == 2
    assert "--installer" in r.stderr and "vars.yml" in r.stderr
    assert plain.read_text() == "some_var: 1\n"


def test_write_config_for_a_command_installer_takes_the_kind_from_the_file(
    tmp_path: Path,
) -> None:
    spec = make_cluster(tmp_path, "{kind: command, command: 'true'}")
    r = runner.invoke(
        app, ["write-config", "-c", str(spec), "--json", str(tmp_path / "conf/common.yaml")]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["installer"] == "kubesphere"


def test_write_config_bad_file_is_exit_2_naming_it(tmp_path: Path) -> None:
    spec = make_cluster(tmp_path, KS)
    (tmp_path / "conf" / "common.yaml").write_text("- not\n- a mapping\n")
    r = runner.invoke(app, ["write-config", "-c", str(spec)])
    assert r.exit_code == 2
    assert "common.yaml: top level" in r.stderr
    assert "Traceback" not in r.output


@pytest.mark.parametrize(("code", "exit_code"), [(0, 0), (5, 1)])
def test_install_judges_the_exit_code_and_logs(tmp_path: Path, code: int, exit_code: int) -> None:
    spec = make_cluster(
        tmp_path, f"{{kind: command, command: 'echo hello-from-installer; exit {code}'}}"
    )
    # --no-probe: the console VIP of this spec is an example address, never contacted.
    r = runner.invoke(app, ["install", "-c", str(spec), "--no-probe"])
    assert r.exit_code == exit_code, r.output
    logs = list(tmp_path.glob("halb-install-*.log"))
    assert len(logs) == 1
    assert "hello-from-installer" in logs[0].read_text()
    assert ("install succeeded" in r.stdout) == (code == 0)
    failed = "install failed after" in r.stdout and f"ended with exit code {code}" in r.stdout
    assert failed == (code != 0)


def test_install_log_option(tmp_path: Path) -> None:
    spec = make_cluster(tmp_path, "{kind: command, command: 'echo logged'}")
    log = tmp_path / "custom.log"
    r = runner.invoke(app, ["install", "-c", str(spec), "--log", str(log), "--no-probe"])
    assert r.exit_code == 0, r.output
    assert "logged" in log.read_text()
