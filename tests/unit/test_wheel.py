"""The wheel carries the templates, drop-ins and the Vagrant lab: build it, install it in a
fresh venv, render with it and find its Vagrantfile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests/golden/cases/ks-guide"


def site_dir(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.mark.slow
def test_wheel_renders_in_fresh_venv(tmp_path: Path) -> None:
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("halb-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # The dependencies come from the running environment's site dirs (no download; this
    # works whether that is a venv or not). Listed in a .pth, their own .pth files are not
    # read, so an editable halb there stays invisible: halb itself comes from the wheel only.
    deps = [p for p in sys.path if p.endswith("-packages")]
    (site_dir(venv) / "test-deps.pth").write_text("".join(f"{p}\n" for p in deps))
    pip = venv / "bin/pip"
    subprocess.run(
        [str(pip), "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    halb = venv / "bin/halb"
    version = subprocess.run([str(halb), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("halb ")
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import halb; print(halb.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert str(venv) in where.stdout, "halb was not imported from the wheel"
    work = tmp_path / "case"
    shutil.copytree(CASE, work, ignore=shutil.ignore_patterns("expected"))
    r = subprocess.run(
        [str(halb), "render", "-c", str(work / "halb.yaml"), "-o", str(work / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    got = (work / "out/lb1/etc/haproxy/haproxy.cfg").read_text()
    assert got == (CASE / "expected/lb1/etc/haproxy/haproxy.cfg").read_text()
    dropin = work / "out/lb1/etc/systemd/system/haproxy.service.d/90-halb.conf"
    assert dropin.read_text().startswith("# Managed by halb")
    # `halb lab up --provider vagrant` without --vagrant-dir: the Vagrantfile and its
    # provision scripts come with the package
    found = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "from pathlib import Path; from halb.lab.vagrant_run import resolve_vagrant_dir;"
            "d = resolve_vagrant_dir(Path('lab'), None); print(d);"
            "print(sorted(p.name for p in (d / 'provision').iterdir()));"
            # the Vagrantfile's default stand-in, ../lab/fakeapi.py from its folder
            "print((d / '..' / 'lab' / 'fakeapi.py').is_file())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert found.returncode == 0, found.stderr
    vdir, provision, fakeapi = found.stdout.splitlines()
    assert vdir.startswith(str(venv)) and vdir.endswith("/halb/vagrant")
    assert provision == str(["common.sh", "lb.sh", "master.sh", "node.sh"])
    assert fakeapi == "True"
