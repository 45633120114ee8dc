"""Rendered configs for each case under cases/ match the committed expected/ files, and
the expected files pass the daemons' own validators.

Regenerate after an intended change: HALB_UPDATE_GOLDEN=1 pytest tests/golden
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from halb.checkconf import haproxy_check, keepalived_check
from halb.render import render_cluster
from halb.spec import load_cluster

CASES = Path(__file__).parent / "cases"
UPDATE = os.environ.get("HALB_UPDATE_GOLDEN") == "1"


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "halb.yaml").exists())


def rendered_tree(case: Path) -> dict[str, str]:
    cluster = load_cluster(case / "halb.yaml")
    out = {}
    for host, files in render_cluster(cluster).items():
        for path, f in files.items():
            out[f"{host}{path}"] = f.content
    return out


@pytest.mark.parametrize("name", case_names())
def test_render_matches_golden(name: str) -> None:
    case = CASES / name
    expected_dir = case / "expected"
    got = rendered_tree(case)
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, content in got.items():
            p = expected_dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
    expected = {
        str(p.relative_to(expected_dir)): p.read_text()
        for p in expected_dir.rglob("*")
        if p.is_file()
    }
    assert sorted(got) == sorted(expected)
    for rel, content in got.items():
        assert content == expected[rel], f"{name}/{rel} differs from the golden file"


def test_render_is_deterministic() -> None:
    case = CASES / "ks-guide"
    assert rendered_tree(case) == rendered_tree(case)


needs_tools = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("keepalived") is None,
    reason="haproxy and keepalived are installed by make test",
)


@needs_tools
@pytest.mark.parametrize("name", case_names())
def test_golden_files_pass_validators(name: str, tmp_path: Path) -> None:
    expected_dir = CASES / name / "expected"
    for host_dir in sorted(p for p in expected_dir.iterdir() if p.is_dir()):
        root = tmp_path / host_dir.name
        shutil.copytree(host_dir, root)
        for script in (root / "etc/keepalived/halb").iterdir():
            script.chmod(0o755)
        (root / "etc/keepalived/keepalived.conf").chmod(0o600)
        h = haproxy_check(host_dir.name, root / "etc/haproxy/haproxy.cfg")
        assert h.ok, h.output
        if os.geteuid() != 0:
            pytest.skip("keepalived -t runs in a private network namespace: needs root")
        k = keepalived_check(host_dir.name, root / "etc/keepalived")
        assert k.ok, k.output
