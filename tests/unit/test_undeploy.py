"""`halb undeploy`: the list of what a deploy leaves covers every file halb renders, the
host's answer parses into a plan (keepalived stops first, a replaced file comes back, a
second run has nothing to do), and bad input exits 2 before any host is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.cli import app
from halb.deploy.undeploy import HostLook, parse_look, plan_undo, undeploy, undo_argv
from halb.errors import InputError
from halb.inventory import Host
from halb.paths import (
    BACKUP_DIR,
    DEPLOYED_FILES,
    DEPLOYED_STATE,
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    MANAGED_MARK,
    REDIRECT_NFT,
    VRRP_STATE_DIR,
)
from halb.render import render_cluster
from halb.spec import load_cluster
from halb.transport import Transport

CASES = Path(__file__).parent.parent / "golden" / "cases"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir()))
@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_every_file_deploy_writes_is_on_undeploys_list(
    case: str, manager: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = load_cluster(CASES / case / "halb.yaml")
    monkeypatch.setattr(type(cluster), "service_manager", lambda self, h: manager)
    for host, files in render_cluster(cluster).items():
        for path, f in files.items():
            assert path in DEPLOYED_FILES, f"{case} {host}: {path} is not in DEPLOYED_FILES"
            assert MANAGED_MARK in f.content, f"{case} {host}: {path} lacks halb's header"


LOOK = f"""\
file {HAPROXY_CFG}
orig {HAPROXY_CFG} {BACKUP_DIR}/20260101T000000.000000Z{HAPROXY_CFG}
file {KEEPALIVED_CONF}
file {REDIRECT_NFT}
file /etc/passwd
orig {REDIRECT_NFT} /tmp/elsewhere
state {VRRP_STATE_DIR}
state /etc
table ip halb_redirect
table inet filter
"""


def test_the_hosts_answer_becomes_the_plan() -> None:
    files, originals, state, tables = parse_look(LOOK)
    # only names from halb's own list are taken, whatever the host prints
    assert files == (HAPROXY_CFG, KEEPALIVED_CONF, REDIRECT_NFT)
    assert originals == {HAPROXY_CFG: f"{BACKUP_DIR}/20260101T000000.000000Z{HAPROXY_CFG}"}
    assert state == (VRRP_STATE_DIR,) and tables == ("ip halb_redirect",)
    look = HostLook(files, originals, state, tables, {"haproxy": True, "keepalived": True})
    u = plan_undo("lb1", look)
    assert u.stop == ("keepalived", "haproxy")  # the VIPs leave before HAProxy stops
    assert u.restore == originals and u.remove == (KEEPALIVED_CONF, REDIRECT_NFT)
    assert u.changed
    argv = undo_argv(u)
    assert argv[:2] == ["sh", "-c"] and HAPROXY_CFG in argv and "ip halb_redirect" in argv


def test_a_host_without_halbs_files_has_nothing_to_undo() -> None:
    # the restored original carries no header: it is not listed, and services that run on
    # a config that is not halb's are left running
    look = HostLook((), {}, (), (), {"haproxy": True, "keepalived": True})
    u = plan_undo("lb1", look)
    assert not u.changed and u.stop == ()


def test_state_is_on_the_list() -> None:
    assert VRRP_STATE_DIR in DEPLOYED_STATE


def _no_transport(host: Host) -> Transport:
    raise AssertionError(f"{host.name} was contacted")


def test_an_unknown_host_is_refused_before_any_connection(tmp_path: Path) -> None:
    cluster = load_cluster(CASES / "ks-guide" / "halb.yaml")
    with pytest.raises(InputError, match="nolb: not an LB host"):
        undeploy(cluster, limit=["nolb"], transport_for=_no_transport)


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["undeploy", "-c", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2, r.output
    spec = CASES / "ks-guide" / "halb.yaml"
    r = CliRunner().invoke(app, ["undeploy", "--json", "-c", str(spec), "--host", "nolb"])
    assert r.exit_code == 2, r.output
    assert "not an LB host" in r.output
