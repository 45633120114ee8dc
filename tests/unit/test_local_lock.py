"""The deploy lock on the machine that runs halb: one deploy per spec, no file left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from halb.deploy import locks
from halb.deploy.locks import LocalLock
from halb.errors import DeployError


def test_a_second_deploy_of_the_same_spec_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "halb.yaml"
    first, second = LocalLock(spec), LocalLock(spec)
    first.acquire()
    try:
        with pytest.raises(DeployError, match="another halb deploy is running"):
            second.acquire()
        assert "pid " in first.path.read_text()
    finally:
        first.release()
    second.acquire()  # free again once released
    second.release()


def test_release_leaves_no_lock_file(tmp_path: Path) -> None:
    lock = LocalLock(tmp_path / "halb.yaml")
    lock.acquire()
    assert lock.path.exists()
    lock.release()
    assert not lock.path.exists()


def test_a_lock_on_a_file_removed_meanwhile_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the check is for: we open the file, its holder releases and removes it,
    then we lock the removed file. Forced here by removing it right after our open."""
    lock = LocalLock(tmp_path / "halb.yaml")
    real_open = os.open
    opened: list[int] = []

    def open_then_lose_it(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        opened.append(os.fstat(fd).st_ino)
        if len(opened) == 1:
            os.unlink(path)
        return fd

    monkeypatch.setattr(locks.os, "open", open_then_lose_it)
    lock.acquire()
    try:
        assert len(opened) == 2  # the first, removed file was given up
        assert os.stat(lock.path).st_ino == opened[1]
        with pytest.raises(DeployError, match="another halb deploy is running"):
            LocalLock(tmp_path / "halb.yaml").acquire()
    finally:
        lock.release()
