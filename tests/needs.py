"""Tools from the Debian packages (`make debs`): a unit test that runs one is skipped
where it is missing (`make unit` needs only the venv), and fails under `make test`, which
installs them and says so with HALB_TEST_DEBS=1."""

from __future__ import annotations

import os
import shutil

import pytest


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    what = ", ".join(missing)
    if os.environ.get("HALB_TEST_DEBS"):
        pytest.fail(f"{what} not installed, though `make debs` installs it")
    pytest.skip(f"needs {what} (`make test` installs it)")
