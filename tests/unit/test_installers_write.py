"""write_config: backup, atomic replace, mode kept, nothing written when nothing changes."""

from __future__ import annotations

import shutil
import stat
from datetime import datetime
from pathlib import Path

import pytest

from halb.errors import InputError
from halb.installers import LBSettings, write_config

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
SETTINGS = LBSettings("192.168.0.253", 8443, "lb.kubesphere.local")
NOW = datetime(2024, 5, 6, 7, 8, 9)


@pytest.fixture
def common(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "common.yaml"
    shutil.copy(FIXTURES / "kubesphere-common.yaml", path)
    path.chmod(0o640)
    return path


def test_write_backs_up_and_keeps_mode(common: Path) -> None:
    original = common.read_text()
    result = write_config("kubesphere", common, SETTINGS, now=NOW)
    assert result.changed and result.written
    assert result.backup == common.with_name("common.yaml.halb-bak-20240506070809")
    assert result.backup.read_text() == original
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(common.stat().st_mode) == 0o640
    text = common.read_text()
    assert "loadbalancer_apiserver:\n  address: 192.168.0.253\n  port: 8443\n" in text
    assert result.diff.count("\n+") >= 8 and "\n-" not in result.diff.split("+++", 1)[1]
    # No temp files left behind.
    assert sorted(p.name for p in common.parent.iterdir()) == [
        "common.yaml",
        "common.yaml.halb-bak-20240506070809",
    ]


def test_second_write_changes_nothing(common: Path) -> None:
    write_config("kubesphere", common, SETTINGS, now=NOW)
    before = common.stat()
    again = write_config("kubesphere", common, SETTINGS, now=datetime(2024, 5, 6, 9, 0, 0))
    assert (again.changed, again.written, again.backup, again.diff) == (False, False, None, "")
    assert common.stat().st_ino == before.st_ino and common.stat().st_mtime == before.st_mtime
    assert len(list(common.parent.iterdir())) == 2  # still just the one backup


def test_dry_run_writes_nothing(common: Path) -> None:
    original = common.read_text()
    result = write_config("kubesphere", common, SETTINGS, dry_run=True, now=NOW)
    assert result.changed and not result.written and result.backup is None
    assert "+loadbalancer_apiserver:" in result.diff
    assert common.read_text() == original
    assert [p.name for p in common.parent.iterdir()] == ["common.yaml"]


def test_backups_in_the_same_second_do_not_overwrite(common: Path) -> None:
    first = write_config("kubesphere", common, SETTINGS, now=NOW)
    other = LBSettings("192.168.0.252", 6443, "lb.kubesphere.local")
    second = write_config("kubesphere", common, other, now=NOW)
    assert first.backup is not None and second.backup is not None
    assert second.backup.name == "common.yaml.halb-bak-20240506070809.1"
    assert "192.168.0.253" in second.backup.read_text()


def test_symlinked_config_keeps_its_link(tmp_path: Path, common: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(common)
    write_config("kubesphere", link, SETTINGS, now=NOW)
    assert link.is_symlink()
    assert "loadbalancer_apiserver:" in common.read_text()


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml: config file not found"):
        write_config("kubesphere", tmp_path / "nope.yaml", SETTINGS)


def test_bad_yaml_names_the_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "common.yaml"
    path.write_text("a: [1\n")
    with pytest.raises(InputError, match=str(path)):
        write_config("kubesphere", path, SETTINGS)
    assert [p.name for p in tmp_path.iterdir()] == ["common.yaml"]
