"""vagrant/Vagrantfile under Ruby: `ruby -c`, and its settings evaluated with a recording
stand-in for Vagrant's config objects (tests/fixtures/vagrant/stub.rb): the layout it
writes for `halb lab up` and the environment overrides it applies. No VM is made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from halb.errors import InputError
from halb.lab import vagrant
from tests.needs import need

ROOT = Path(__file__).parent.parent.parent
VAGRANTFILE = ROOT / "vagrant" / "Vagrantfile"
FIXTURES = ROOT / "tests" / "fixtures" / "vagrant"
RUBY = shutil.which("ruby")


@pytest.fixture(autouse=True)
def _need_ruby() -> None:
    need("ruby")


def ruby(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HALB_VAGRANT_")}
    return subprocess.run(
        [str(RUBY), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def evaluate(tmp_path: Path, **env: str) -> tuple[dict[str, Any], Path]:
    layout = tmp_path / "layout.json"
    r = ruby(str(FIXTURES / "stub.rb"), str(VAGRANTFILE), HALB_VAGRANT_LAYOUT=str(layout), **env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), layout


def test_ruby_syntax() -> None:
    r = ruby("-c", str(VAGRANTFILE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Syntax OK"


def test_default_layout_is_what_the_stand_in_writes(tmp_path: Path) -> None:
    config, layout = evaluate(tmp_path)
    # The flow tests' stand-in writes this fixture; it must stay what the Vagrantfile writes.
    assert json.loads(layout.read_text()) == json.loads(
        (FIXTURES / "layout-default.json").read_text()
    )
    parsed = vagrant.parse_layout(layout.read_bytes(), layout)
    machines = {m["name"]: m["vm"] for m in config["machines"]}
    assert list(machines) == [h.name for h in parsed.hosts]
    for h in parsed.hosts:  # the address in the layout is the one the VM is given
        assert machines[h.name]["network"] == [{"args": ["private_network"], "opts": {"ip": h.ip}}]
        assert machines[h.name]["hostname"] == h.name
    assert config["box"] == "debian/bookworm64"
    assert [p["name"] for p in config["providers"]] == ["virtualbox", "libvirt"]
    assert config["providers"][0]["settings"] == {"memory": 512, "cpus": 1, "linked_clone": True}


def test_environment_overrides(tmp_path: Path) -> None:
    config, layout = evaluate(
        tmp_path,
        HALB_VAGRANT_NET="10.20.30",
        HALB_VAGRANT_BOX="generic/debian12",
        HALB_VAGRANT_PROVIDER="libvirt",
        HALB_VAGRANT_MEMORY="1024",
        HALB_VAGRANT_CPUS="2",
    )
    assert config["box"] == "generic/debian12"
    assert [p["name"] for p in config["providers"]] == ["libvirt", "virtualbox"]
    assert config["providers"][0]["settings"] == {"memory": 1024, "cpus": 2}
    parsed = vagrant.parse_layout(layout.read_bytes(), layout)
    assert str(parsed.network) == "10.20.30.0/24"
    assert (parsed.vip_internal, parsed.vip_external) == ("10.20.30.253", "10.20.30.254")
    assert parsed.hosts[0].ip == "10.20.30.11" and parsed.provider == "libvirt"
    lb1 = config["machines"][0]["vm"]
    assert lb1["network"][0]["opts"] == {"ip": "10.20.30.11"}


def test_no_file_written_without_the_variable(tmp_path: Path) -> None:
    vdir = tmp_path / "vm"
    shutil.copytree(ROOT / "vagrant", vdir, ignore=shutil.ignore_patterns(".vagrant"))
    before = sorted(p.relative_to(vdir) for p in vdir.rglob("*"))
    r = ruby(str(FIXTURES / "stub.rb"), str(vdir / "Vagrantfile"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["machines"]  # it was evaluated
    assert sorted(p.relative_to(vdir) for p in vdir.rglob("*")) == before


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HALB_VAGRANT_NET", "192.168.300"),
        ("HALB_VAGRANT_MEMORY", "128"),
        ("HALB_VAGRANT_CPUS", "two"),
    ],
)
def test_bad_setting_stops_the_vagrantfile(tmp_path: Path, key: str, value: str) -> None:
    layout = tmp_path / "layout.json"
    r = ruby(
        str(FIXTURES / "stub.rb"), str(VAGRANTFILE), HALB_VAGRANT_LAYOUT=str(layout), **{key: value}
    )
    assert r.returncode != 0
    assert r.stderr.strip().startswith(f"{key}={value}: give")
    assert not layout.exists()
    with pytest.raises(InputError, match=f"^{key}="):  # halb refuses it first
        vagrant.check_env({key: value})
