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


# libvirt's options for the private network (VirtualBox ignores them): isolated, no DHCP.
PRIVATE = {
    "libvirt__network_name": "halb-lab",
    "libvirt__forward_mode": "none",
    "libvirt__dhcp_enabled": False,
}


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
        assert machines[h.name]["network"] == [
            {"args": ["private_network"], "opts": PRIVATE | {"ip": h.ip}}
        ]
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
    assert config["providers"][0]["settings"] == {
        "memory": 1024,
        "cpus": 2,
        "graphics_type": "none",  # a lab VM has a serial console only
        "video_type": "none",
    }
    parsed = vagrant.parse_layout(layout.read_bytes(), layout)
    assert str(parsed.network) == "10.20.30.0/24"
    assert (parsed.vip_internal, parsed.vip_external) == ("10.20.30.253", "10.20.30.254")
    assert parsed.hosts[0].ip == "10.20.30.11" and parsed.provider == "libvirt"
    lb1 = config["machines"][0]["vm"]
    assert lb1["network"][0]["opts"] == PRIVATE | {"ip": "10.20.30.11"}
    assert config["providers"][0]["settings"]["graphics_type"] == "none"
    assert "driver" not in config["providers"][0]["settings"]  # vagrant-libvirt's default


def test_halb_lab_settings(tmp_path: Path) -> None:
    """What `halb lab up --provider vagrant` sets on a machine without KVM: sizes, TCG,
    the emulator, consoles, the lab's package repository, the stand-in file."""
    config, layout = evaluate(
        tmp_path,
        HALB_VAGRANT_PROVIDER="libvirt",
        HALB_VAGRANT_LBS="2",
        HALB_VAGRANT_MASTERS="1",
        HALB_VAGRANT_NODES="1",
        HALB_VAGRANT_LIBVIRT_DRIVER="qemu",
        HALB_VAGRANT_EMULATOR="/lab/vm/qemu-tcg",
        HALB_VAGRANT_CONSOLE_DIR="/lab/consoles",
        HALB_VAGRANT_BOOT_TIMEOUT="900",
        HALB_VAGRANT_APT_REPO="http://192.168.121.1:8080/",
        HALB_VAGRANT_FAKEAPI="/src/fakeapi.py",
    )
    parsed = vagrant.parse_layout(layout.read_bytes(), layout)
    assert [(h.name, h.ip, h.role) for h in parsed.hosts] == [
        ("lb1", "192.168.56.11", "lb"),
        ("lb2", "192.168.56.12", "lb"),
        ("master1", "192.168.56.21", "master"),
        ("node1", "192.168.56.31", "node"),
    ]
    libvirt = config["providers"][0]["settings"]
    assert libvirt["driver"] == "qemu" and libvirt["cpu_model"] == "qemu64"
    assert libvirt["emulator_path"] == "/lab/vm/qemu-tcg"
    machines = {m["name"]: m["vm"] for m in config["machines"]}
    assert machines["lb1"]["provider"] == [{"args": ["libvirt"], "opts": {}}]  # its console
    shells = [p for p in machines["master1"]["provision"] if p["args"] == ["shell"]]
    assert shells[0]["opts"]["args"][3] == "http://192.168.121.1:8080/"
    files = [p["opts"] for p in machines["master1"]["provision"] if p["args"] == ["file"]]
    assert files == [{"source": "/src/fakeapi.py", "destination": "/tmp/halb-fakeapi.py"}]
    assert not [p for p in machines["lb1"]["provision"] if p["args"] == ["file"]]
    # a master answers the console as a node does: node.sh runs there too, before master.sh
    scripts = {
        name: [p["opts"]["path"] for p in vm["provision"] if p["args"] == ["shell"]]
        for name, vm in machines.items()
    }
    assert scripts["lb1"] == ["provision/common.sh", "provision/lb.sh"]
    assert scripts["master1"] == [
        "provision/common.sh", "provision/node.sh", "provision/master.sh",
    ]  # fmt: skip
    assert scripts["node1"] == ["provision/common.sh", "provision/node.sh"]


@pytest.mark.parametrize("vagrantfile", [VAGRANTFILE, ROOT / "halb" / "vagrant" / "Vagrantfile"])
def test_default_stand_in_is_the_packaged_fakeapi(tmp_path: Path, vagrantfile: Path) -> None:
    """Without HALB_VAGRANT_FAKEAPI (the workstation way) masters and nodes get
    halb/lab/fakeapi.py, through vagrant/ (the link) as from the package's own folder."""
    layout = tmp_path / "layout.json"
    r = ruby(str(FIXTURES / "stub.rb"), str(vagrantfile), HALB_VAGRANT_LAYOUT=str(layout))
    assert r.returncode == 0, r.stderr
    machines = {m["name"]: m["vm"] for m in json.loads(r.stdout)["machines"]}
    fakeapi = (ROOT / "halb" / "lab" / "fakeapi.py").resolve()
    for name in ("master1", "node1"):
        files = [p["opts"] for p in machines[name]["provision"] if p["args"] == ["file"]]
        assert files == [{"source": str(fakeapi), "destination": "/tmp/halb-fakeapi.py"}]
        assert Path(files[0]["source"]).is_file()


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
        ("HALB_VAGRANT_LBS", "0"),
        ("HALB_VAGRANT_BOOT_TIMEOUT", "5"),
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
