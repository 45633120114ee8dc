"""halb.files: bounded reads of regular files only; exclusive, mode-keeping atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from halb.errors import InputError
from halb.files import atomic_write, read_input


def test_reads_a_regular_file(tmp_path: Path) -> None:
    p = tmp_path / "hosts.ini"
    p.write_bytes(b"[all]\nlb1\n")
    assert read_input(p, "inventory") == b"[all]\nlb1\n"


@pytest.mark.timeout(5)
def test_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    with pytest.raises(InputError, match="not a regular file"):
        read_input(p, "inventory")


@pytest.mark.timeout(5)
def test_refuses_a_device() -> None:
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        read_input(Path("/dev/zero"), "spec")


def test_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    p.write_bytes(b"a" * 101)
    with pytest.raises(InputError, match="101 bytes; halb reads at most 100"):
        read_input(p, "spec", limit=100)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="inventory not found"):
        read_input(tmp_path / "nope", "inventory")
    with pytest.raises(InputError, match="is a directory"):
        read_input(tmp_path, "inventory")


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    p = tmp_path / "common.yaml"
    p.write_text("old\n")
    p.chmod(0o640)
    atomic_write(p, "new\n")
    assert p.read_text() == "new\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    atomic_write(p, b"x", mode=0o600)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert [q.name for q in tmp_path.iterdir()] == ["common.yaml"]


def test_atomic_write_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    out = tmp_path / "out"
    out.mkdir()
    # Every name an older writer would have used for its temp file points at the victim.
    for name in (".f.tmp", ".f.tmp.0", "f.tmp"):
        (out / name).symlink_to(victim)
    atomic_write(out / "f", "data\n")
    assert victim.read_text() == "keep\n"
    assert (out / "f").read_text() == "data\n"
    assert not (out / "f").is_symlink()
