"""`render -o`: output confined to the folder whatever a host is called, written whole or
not at all, and bad targets (a file, a read-only or foreign folder) are exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.cli import app
from halb.errors import InputError, SpecError
from halb.outdir import MARKER, confined, write_rendered
from halb.render import RenderedFile

CASE = Path(__file__).parent.parent / "golden" / "cases" / "ks-guide"
runner = CliRunner()


def files(*hosts: str) -> dict[str, dict[str, RenderedFile]]:
    return {h: {"/etc/haproxy/haproxy.cfg": RenderedFile(f"# {h}\n", 0o644)} for h in hosts}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("host", ["..", "../x", "/abs", "a/../../b", ""])
def test_confined_refuses_escaping_names(tmp_path: Path, host: str) -> None:
    with pytest.raises(SpecError, match="leaves the folder"):
        confined(tmp_path, host, "/etc/haproxy/haproxy.cfg")


def test_confined_keeps_plain_names_inside(tmp_path: Path) -> None:
    p = confined(tmp_path, "lb1", "/etc/haproxy/haproxy.cfg")
    assert p == tmp_path / "lb1/etc/haproxy/haproxy.cfg"


def test_escaping_host_writes_nothing_anywhere(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SpecError):
        write_rendered(files("lb1", "../../escape"), out)
    assert not out.exists()
    assert not (tmp_path / "escape").exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_render_keeps_the_previous_tree(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_rendered(files("lb1", "lb2"), out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(SpecError):
        write_rendered(files("lb3", "/abs"), out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert leftovers(tmp_path) == []


def test_rerender_replaces_the_whole_tree(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_rendered(files("lb1", "lb2"), out)
    written = write_rendered(files("lb3"), out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "lb3"]
    assert written == [out / "lb3/etc/haproxy/haproxy.cfg"]
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    assert leftovers(tmp_path) == []


def test_target_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        write_rendered(files("lb1"), tmp_path / "f")
    with pytest.raises(InputError, match="cannot write there"):
        write_rendered(files("lb1"), tmp_path / "f" / "sub")


def test_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="did not write"):
        write_rendered(files("lb1"), tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "x"


def test_render_onto_a_file_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    r = runner.invoke(app, ["render", "-c", str(CASE / "halb.yaml"), "-o", str(tmp_path / "f")])
    assert r.exit_code == 2, r.output
    assert "exists and is not a folder" in r.output and "Traceback" not in r.output


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_render_under_a_read_only_folder_is_exit_2(tmp_path: Path) -> None:
    # root ignores mode bits, so the folder is a read-only tmpfs in a private mount ns
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (
        f"mount -t tmpfs -o ro halbtest {ro} && "
        f"halb render -c {CASE / 'halb.yaml'} -o {ro / 'out'}; echo rc=$?"
    )
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "rc=2" in p.stdout, p.stdout + p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Read-only file system" in errors[0], p.stderr
    assert "Traceback" not in p.stderr


def test_tree_from_before_the_marker_is_replaced(tmp_path: Path) -> None:
    old = tmp_path / "out" / "lb1" / "etc/haproxy"
    old.mkdir(parents=True)
    (old / "haproxy.cfg").write_text("# Managed by halb 0.0.9; local edits are replaced\n")
    write_rendered(files("lb2"), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER, "lb2"]
