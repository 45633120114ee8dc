"""The VM lab's pure parts: the box recipe and its key, the mirror apt uses, the lab's
namespace names and paths, the TCG wrapper, the settings halb gives the Vagrantfile."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from halb.errors import InputError
from halb.lab import vagrant, vagrant_run, vm_box, vm_lab, vm_ns
from halb.lab.vm_box import BoxPaths

SOURCES_DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_recipe_key_names_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    key = vm_box.recipe_key()
    assert len(key) == 12 and key == vm_box.recipe_key()
    monkeypatch.setattr(vm_box, "INCLUDE", (*vm_box.INCLUDE, "vim"))
    assert vm_box.recipe_key() != key  # a changed recipe is a new box
    monkeypatch.setattr(vm_box, "INCLUDE", vm_box.INCLUDE[:-1])
    monkeypatch.setattr(vm_box, "BOX_VAGRANTFILE", vm_box.BOX_VAGRANTFILE + "# x\n")
    assert vm_box.recipe_key() != key


def test_box_paths() -> None:
    p = BoxPaths.of(Path("/var/cache/halb-lab"), "0123456789ab")
    assert p.box == Path("/var/cache/halb-lab/box/0123456789ab/halb-debian12.box")
    assert p.repo == Path("/var/cache/halb-lab/box/0123456789ab/repo")
    assert p.vagrant_home == Path("/var/cache/halb-lab/vagrant.d")
    assert vm_box.box_name("0123456789ab") == "halb-lab/debian12-0123456789ab"


@pytest.mark.parametrize(
    ("texts", "mirror"),
    [
        ([("debian.sources", SOURCES_DEB822)], "http://deb.debian.org/debian"),
        (
            [("sources.list", "deb http://security.debian.org/ bookworm-security main\n"
                              "deb [arch=amd64] http://ftp.de.debian.org/debian bookworm main\n")],
            "http://ftp.de.debian.org/debian",
        ),
        ([("debian.sources", "Types: deb-src\nURIs: http://x/debian\nSuites: bookworm\n")], None),
        ([("x.list", "deb http://deb.debian.org/debian bullseye main\n")], None),
    ],
)  # fmt: skip
def test_mirror_from_sources(texts: list[tuple[str, str]], mirror: str | None) -> None:
    assert vm_box.mirror_from_sources(texts) == mirror


def test_box_hooks_take_paths_from_the_environment() -> None:
    # No path is written into a hook: each reads $1, HALB_BOX_KEY or HALB_BOX_REPO.
    for hook in vm_box.HOOKS:
        assert "/var/cache/halb-lab" not in hook and "/usr/share" not in hook
    assert any("$HALB_BOX_KEY" in h for h in vm_box.HOOKS)
    assert any("$HALB_BOX_REPO" in h for h in vm_box.HOOKS)


def test_namespace_names_and_refused_folders(tmp_path: Path) -> None:
    a, b = vm_ns.VmNs.of(tmp_path / "a"), vm_ns.VmNs.of(tmp_path / "b")
    assert a.name.startswith("halbvm-") and len(a.name) <= 15 and a.name != b.name
    assert a == vm_ns.VmNs.of(tmp_path / "a")
    assert a.state == (tmp_path / "a").resolve() / "vm"
    for shadowed in ("/var/tmp/lab", "/run/lab", "/etc/lab"):
        with pytest.raises(InputError, match="mounts over"):
            vm_ns.VmNs.of(Path(shadowed))
    # the folder is part of the overlay's mount options: no comma starts another option
    for odd in ("a,upperdir=b", "a\\b", "a\nb"):
        with pytest.raises(InputError, match="part of a mount option") as e:
            vm_ns.VmNs.of(tmp_path / odd)
        assert "\n" not in str(e.value)  # the name shows escaped, on one line


def test_enter_without_libvirtd_names_the_way_out(tmp_path: Path) -> None:
    ns = vm_ns.VmNs.of(tmp_path)
    assert ns.libvirtd_pid() is None
    with pytest.raises(vm_ns.VmNsError, match="halb lab down --provider vagrant"):
        ns.enter_argv()


def test_libvirt_qemu_user_added_once() -> None:
    passwd, group = vm_ns.with_user("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n")
    assert passwd.count("libvirt-qemu:") == 1 and group.count("libvirt-qemu:") == 1
    assert vm_ns.with_user(passwd, group) == (passwd, group)


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_tcg_wrapper_bounds_only_the_tcg_accelerator(tmp_path: Path) -> None:
    wrapper = tmp_path / "qemu"
    wrapper.write_text(
        vm_ns.tcg_wrapper(96).replace("exec /usr/bin/qemu-system-x86_64", "printf '%s\\n'")
    )
    args = ["-name", "x", "-accel", "tcg", "-append", "tcg a b", "-machine", "tcg"]
    r = subprocess.run(["sh", str(wrapper), *args], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == [
        "-name", "x", "-accel", "tcg,tb-size=96", "-append", "tcg a b", "-machine", "tcg",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("env", "isolate"),
    [
        ({"PATH": "/nonexistent"}, True),
        ({"PATH": "/nonexistent", "HALB_VAGRANT_ISOLATE": "0"}, False),
        ({"PATH": "/nonexistent", "HALB_VAGRANT_BOX": "debian/bookworm64"}, False),
        ({"PATH": "/nonexistent", "HALB_VAGRANT_PROVIDER": "virtualbox"}, False),
        ({"PATH": "/nonexistent", "HALB_VAGRANT_PROVIDER": "x", "HALB_VAGRANT_ISOLATE": "1"}, True),
    ],
)
def test_isolate_by_default(env: dict[str, str], isolate: bool) -> None:
    assert vm_lab.isolate_by_default(env) is isolate


def test_isolate_with_virtualbox_on_path(tmp_path: Path) -> None:
    fake = tmp_path / "VBoxManage"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert vm_lab.isolate_by_default({"PATH": str(tmp_path)}) is False
    with pytest.raises(InputError, match="HALB_VAGRANT_ISOLATE='yes'"):
        vm_lab.isolate_by_default({"HALB_VAGRANT_ISOLATE": "yes"})


def test_lab_env_passes_the_vagrantfiles_own_checks(tmp_path: Path) -> None:
    ns = vm_ns.VmNs.of(tmp_path)
    box = BoxPaths.of(tmp_path / "cache", vm_box.recipe_key())
    env = vm_lab.lab_env(
        ns, tmp_path / "consoles", box, vm_lab.Sizes(), {"HALB_VAGRANT_LIBVIRT_DRIVER": "qemu"}
    )
    assert vagrant.check_env(env)["HALB_VAGRANT_LBS"] == "2"
    assert env["HALB_VAGRANT_EMULATOR"] == str(ns.emulator)
    assert env["VAGRANT_DOTFILE_PATH"] == str(ns.dotfile)  # Vagrant's records: the lab's
    assert env["HALB_VAGRANT_BOX"] == vm_box.box_name(vm_box.recipe_key())
    assert env["HALB_VAGRANT_APT_REPO"] == "http://192.168.121.1:8080/"
    kvm = vm_lab.lab_env(
        ns, tmp_path, box, vm_lab.Sizes(1, 1, 0), {"HALB_VAGRANT_LIBVIRT_DRIVER": "kvm"}
    )
    assert "HALB_VAGRANT_EMULATOR" not in kvm and kvm["HALB_VAGRANT_NODES"] == "0"
    # TCG's VMs get the emulated profile's slower checks in their halb.yaml; KVM's do not
    assert (vm_lab.vrrp_profile(env), vm_lab.vrrp_profile(kvm)) == ("emulated", "default")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("HALB_VAGRANT_LIBVIRT_DRIVER", "xen", "give kvm or qemu"),
        ("HALB_VAGRANT_NODES", "10", "from 0 to 9"),
        ("HALB_VAGRANT_APT_REPO", "http://x/ ./\ndeb", "http:// or https:// URL"),
        ("HALB_VAGRANT_EMULATOR", "qemu-tcg", "absolute path"),
        ("HALB_VAGRANT_CONSOLE_DIR", "/x\n/y", "absolute path"),
    ],
)
def test_bad_lab_settings(key: str, value: str, message: str) -> None:
    with pytest.raises(InputError, match=f"^{key}=.*{message}"):
        vagrant.check_env({key: value})


def test_tb_size_setting() -> None:
    assert vm_lab.tb_size({}) == vm_ns.TB_SIZE_MIB
    assert vm_lab.tb_size({"HALB_VAGRANT_TB_SIZE": "256"}) == 256
    with pytest.raises(InputError, match="HALB_VAGRANT_TB_SIZE='8'"):
        vm_lab.tb_size({"HALB_VAGRANT_TB_SIZE": "8"})


def test_progress_keeps_each_vms_step_and_names_it_on_failure(tmp_path: Path) -> None:
    shown: list[str] = []
    watch = vm_lab._Watch(shown.append)
    for line in (
        "Bringing machine 'lb1' up with 'libvirt' provider...",
        "==> lb1: Creating domain with the following settings...",
        "==> lb1:  -- Memory:            512M",
        "==> lb2: Waiting for domain to get an IP address...",
        "==> lb1: Waiting for machine to boot. This may take a few minutes...",
    ):
        watch.line(line)
    assert len(shown) == 4 and all(s.startswith("[") and " s] " in s for s in shown)
    assert not any("Memory" in s for s in shown)  # domain settings stay in the log
    where = watch.where(tmp_path)
    boot = "'Waiting for machine to boot. This may take a few minutes...'"
    assert f"lb1 at {boot}, console {tmp_path}/lb1.log" in where
    assert (
        f"lb2 at 'Waiting for domain to get an IP address...', console {tmp_path}/lb2.log" in where
    )


def test_lab_state_file_round_trip_and_bad_shapes(tmp_path: Path) -> None:
    vdir = vagrant_run.default_vagrant_dir()
    assert vagrant_run.read_state(tmp_path) == {}
    assert vagrant_run.resolve_vagrant_dir(tmp_path, None) == vdir  # nothing recorded
    vagrant_run.write_state(tmp_path, vdir, {"netns": "halbvm-0123abcd"})
    assert vagrant_run.read_state(tmp_path) == {
        "vagrant_dir": str(vdir),
        "netns": "halbvm-0123abcd",
    }
    assert vagrant_run.resolve_vagrant_dir(tmp_path, None) == vdir
    assert vm_lab.is_isolated(tmp_path)
    for bad in ("{}", '{"vagrant_dir": 5}', "[]", "not json", '{"netns": "x"}'):
        (tmp_path / vagrant_run.STATE_FILE).write_text(bad)
        with pytest.raises(InputError, match="not a Vagrant lab state file; remove it"):
            vagrant_run.resolve_vagrant_dir(tmp_path, None)


def test_a_live_pid_outside_the_labs_netns_is_not_the_labs(tmp_path: Path) -> None:
    ns = vm_ns.VmNs.of(tmp_path)
    ns.state.mkdir(parents=True)
    ns.pid_file.write_text(f"{os.getpid()}\n")  # alive, but in this machine's netns
    ns.repo_pid_file.write_text("not a pid\n")
    assert ns.libvirtd_pid() is None and ns.pid_in_netns(ns.repo_pid_file) is None


def test_up_refuses_an_unusable_folder_before_making_it(tmp_path: Path) -> None:
    lab = tmp_path / "a,upperdir=b" / "lab"
    with pytest.raises(InputError, match="part of a mount option"):
        vm_lab.up(lab, None, vm_lab.Sizes(), 60, lambda _: None, env={})
    assert list(tmp_path.iterdir()) == []  # no folder, no state file


def test_status_refuses_counts_the_state_file_should_not_hold(tmp_path: Path) -> None:
    counts = {"HALB_VAGRANT_LBS": "2", "HALB_VAGRANT_MASTERS": "x"}
    vagrant_run.write_state(tmp_path, vagrant_run.default_vagrant_dir(), counts)
    with pytest.raises(InputError, match=r"vagrant\.json: HALB_VAGRANT_MASTERS='x': give"):
        vm_lab.status(tmp_path, None)
