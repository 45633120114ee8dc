"""`halb lab up|status|down --provider vagrant` end to end, against a `vagrant` stand-in
on PATH (no VM can run on the build machine): the arguments Vagrant gets, the files the
lab writes, and one clear line with a non-zero exit for every failure."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from halb.inventory import load_inventory

ROOT = Path(__file__).parent.parent.parent
STAND_IN = ROOT / "tests" / "fixtures" / "vagrant" / "bin"
HALB = shutil.which("halb") or "halb"


class Flow:
    """A copy of vagrant/ (the stand-in writes its .vagrant/ there) and a lab dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.vdir = tmp / "vm"
        shutil.copytree(ROOT / "vagrant", self.vdir, ignore=shutil.ignore_patterns(".vagrant"))
        self.lab = tmp / "lab"
        self.calls_log = tmp / "calls.jsonl"

    def env(self, mode: str = "ok", path: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALB_VAGRANT_")}
        env.update(
            PATH=path if path is not None else f"{STAND_IN}:{env['PATH']}",
            FAKE_VAGRANT_MODE=mode,
            FAKE_VAGRANT_LOG=str(self.calls_log),
            COLUMNS="200",
            # The user's own Vagrant set-up (the stand-in), not halb's box and namespaces.
            HALB_VAGRANT_ISOLATE="0",
            **extra,
        )
        return env

    def halb(
        self, *args: str, mode: str = "ok", path: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HALB, *args],
            cwd=self.tmp,
            env=self.env(mode, path, **extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def up(self, *extra: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.halb(
            "lab", "up", "--provider", "vagrant", "--dir", "lab", "--vagrant-dir", "vm",
            *extra, **kw,
        )  # fmt: skip

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_log.is_file():
            return []
        return [json.loads(ln) for ln in self.calls_log.read_text().splitlines()]


@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    return Flow(tmp_path)


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


def test_up_status_down(flow: Flow) -> None:
    r = flow.up()
    assert r.returncode == 0, r.stderr
    # progress lines as Vagrant brings each machine up, then the hand-over to `halb up`
    assert "lab vagrant: ==> lb1: Importing base box 'debian/bookworm64'..." in r.stdout
    assert "lab vagrant: ==> node3: Machine booted and ready!" in r.stdout
    assert "    lb1: SSH address" not in r.stdout  # detail lines stay in the log
    assert "halb up -c lab/halb.yaml" in r.stdout
    assert "halb lab down --provider vagrant --dir lab" in r.stdout

    lab = flow.lab.resolve()
    vdir = flow.vdir.resolve()
    calls = flow.calls()
    assert [c["argv"] for c in calls] == [["up", "--no-color"], ["ssh-config", "--no-color"]]
    assert {c["cwd"] for c in calls} == {str(vdir)}
    assert {c["layout"] for c in calls} == {str(lab / "vagrant-layout.json")}

    inv = load_inventory(lab / "hosts.ini")
    assert list(inv.hosts) == [
        "lb1", "lb2", "master1", "master2", "master3", "node1", "node2", "node3",
    ]  # fmt: skip
    node2 = inv.hosts["node2"]
    assert (node2.ssh_address, node2.port, node2.user, node2.ip) == (
        "127.0.0.1",
        2205,
        "vagrant",
        "192.168.56.32",
    )
    key = vdir / ".vagrant/machines/node2/virtualbox/private_key"
    assert node2.private_key_file == str(key) and key.is_file()
    assert f"UserKnownHostsFile={lab / 'known_hosts'}" in (node2.ssh_common_args or "")
    assert (lab / "known_hosts").read_text() == ""
    assert (lab / "hosts.ini").stat().st_mode & 0o077 == 0
    assert "==> master3: Running provisioner: shell..." in (lab / "vagrant-up.log").read_text()
    assert (lab / "conf" / "common.yaml").is_file()

    r = flow.halb("validate", "-c", "lab/halb.yaml")
    assert r.returncode == 0, r.stdout + r.stderr

    r = flow.halb("lab", "status", "--provider", "vagrant", "--dir", "lab")
    assert r.returncode == 0, r.stderr
    assert "  lb1       192.168.56.11   running      (virtualbox)" in r.stdout
    r = flow.halb("lab", "status", "--provider", "vagrant", "--dir", "lab", "--json")
    doc = json.loads(r.stdout)
    assert doc["provider"] == "vagrant"
    assert [(v["name"], v["state"], v["ip"]) for v in doc["vms"]][:2] == [
        ("lb1", "running", "192.168.56.11"),
        ("lb2", "running", "192.168.56.12"),
    ]
    # status and down find the Vagrant folder that `up` recorded in the lab dir
    assert flow.calls()[-1] == {
        "argv": ["status", "--machine-readable"],
        "cwd": str(vdir),
        "layout": None,
        "provider_env": None,
    }

    # a plain `lab down` (the netns lab) refuses a Vagrant lab dir instead of emptying it
    r = flow.halb("lab", "down", "--dir", "lab")
    assert r.returncode == 2
    assert "--provider vagrant" in one_error_line(r)
    assert (lab / "hosts.ini").is_file()

    r = flow.halb("lab", "down", "--provider", "vagrant", "--dir", "lab")
    assert r.returncode == 0, r.stderr
    assert "lab vagrant: ==> lb1: Destroying VM and associated drives..." in r.stdout
    assert flow.calls()[-1]["argv"] == ["destroy", "-f", "--no-color"]
    assert flow.calls()[-1]["cwd"] == str(vdir)
    assert not flow.lab.exists()  # every file it wrote is gone, and the empty dir

    r = flow.halb("lab", "status", "--provider", "vagrant", "--vagrant-dir", "vm", "--json")
    assert {(v["state"], v["ip"]) for v in json.loads(r.stdout)["vms"]} == {("not_created", None)}
    r = flow.halb("lab", "down", "--provider", "vagrant", "--dir", "lab", "--vagrant-dir", "vm")
    assert r.returncode == 0, r.stderr  # twice is fine


def test_settings_reach_vagrant(flow: Flow) -> None:
    r = flow.up("--masters", "2", HALB_VAGRANT_PROVIDER="libvirt", HALB_VAGRANT_MEMORY="1024")
    assert r.returncode == 0, r.stderr
    up = flow.calls()[0]
    # the provider is passed strictly, so Vagrant says why it cannot run, not another one
    assert up["argv"] == ["up", "--no-color", "--provider=libvirt"]
    assert up["provider_env"] == "libvirt"
    assert "HALB_VAGRANT_PROVIDER=libvirt, HALB_VAGRANT_MEMORY=1024" in r.stdout
    # --masters as given, --lbs and --nodes the VM lab's defaults
    assert "HALB_VAGRANT_LBS=2, HALB_VAGRANT_MASTERS=2, HALB_VAGRANT_NODES=1" in r.stdout


def test_no_vagrant_on_path(flow: Flow) -> None:
    r = flow.up(path=str(flow.tmp / "empty"))
    assert r.returncode == 1
    assert "vagrant is not on PATH" in one_error_line(r)
    assert not flow.lab.exists()


def test_no_provider(flow: Flow) -> None:
    r = flow.up(mode="no-provider")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "vagrant up failed: No usable default provider could be found for your system." in line
    assert "vagrant-up.log" in line
    assert "Vagrant relies on" not in line  # Vagrant's first paragraph only
    assert not (flow.lab / "hosts.ini").exists()
    r = flow.halb("lab", "status", "--provider", "vagrant", "--dir", "lab", mode="no-provider")
    assert r.returncode == 1
    assert "vagrant status failed: No usable default provider" in one_error_line(r)


def test_vm_that_does_not_come_up(flow: Flow) -> None:
    r = flow.up(mode="up-fails")
    assert r.returncode == 1
    assert "vagrant up failed: Timed out while waiting for the machine to boot." in (
        one_error_line(r)
    )
    assert "lab vagrant: ==> master2: Booting VM..." in r.stdout
    assert not (flow.lab / "hosts.ini").exists()
    # what was made can be removed
    r = flow.halb("lab", "down", "--provider", "vagrant", "--dir", "lab")
    assert r.returncode == 0, r.stderr


def test_ssh_config_lacks_a_host(flow: Flow) -> None:
    r = flow.up(mode="missing-host")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "vagrant ssh-config failed: The provider for this Vagrant-managed machine is" in line
    assert "(no SSH for node3)" in line
    assert not (flow.lab / "hosts.ini").exists()


def test_vagrantfile_without_the_layout(flow: Flow) -> None:
    r = flow.up(mode="no-layout")
    assert r.returncode == 1
    line = one_error_line(r)
    assert "Vagrantfile wrote no layout to" in line
    assert "HALB_VAGRANT_LAYOUT" in line
    assert not (flow.lab / "hosts.ini").exists()


@pytest.mark.timeout(60)
def test_timeout_is_bounded(flow: Flow) -> None:
    t0, started = time.monotonic(), time.time() - 1
    r = flow.up("--timeout", "2", mode="hang")
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert "`vagrant up --no-color` did not finish within 2 s; stopped it" in one_error_line(r)
    assert took < 30  # SIGINT stops the stand-in at once; SIGKILL would follow after 10 s
    assert "lab vagrant: ==> lb1: Importing base box" in r.stdout
    # the whole process group was stopped: the provider tool vagrant started is gone too
    helper = int(Path(str(flow.calls_log) + ".helper").read_text())
    deadline = time.monotonic() + 5
    try:
        while psutil.pid_exists(helper) and psutil.Process(helper).status() != "zombie":
            assert time.monotonic() < deadline, f"pid {helper} left running"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(psutil.Error):  # the test's own helper, also on failure
            proc = psutil.Process(helper)
            if proc.cmdline() == ["sleep", "300"] and proc.create_time() >= started:
                proc.kill()


@pytest.mark.parametrize(
    ("args", "extra", "message"),
    [
        ((), {"HALB_VAGRANT_NET": "192.168.56.0"}, "HALB_VAGRANT_NET='192.168.56.0': give"),
        ((), {"HALB_VAGRANT_MEMORY": "lots"}, "HALB_VAGRANT_MEMORY='lots'"),
        (("--lbs", "10"), {}, "HALB_VAGRANT_LBS='10': give a whole number from 1 to 9"),
        (("--init", "systemd"), {}, "--name and --init are for the netns lab"),
        (("--provider", "docker"), {}, "Invalid value for '--provider'"),
    ],
)
def test_bad_input_is_exit_2_and_runs_nothing(
    flow: Flow, args: tuple[str, ...], extra: dict[str, str], message: str
) -> None:
    r = flow.up(*args, **extra)
    assert r.returncode == 2, r.stderr
    assert message in one_error_line(r)
    assert flow.calls() == []
    assert not flow.lab.exists()


@pytest.mark.parametrize("command", ["up", "down", "status"])
def test_vagrant_options_without_the_provider(flow: Flow, command: str) -> None:
    r = flow.halb("lab", command, "--vagrant-dir", "vm")
    assert r.returncode == 2
    assert "--vagrant-dir and --timeout are for --provider vagrant" in one_error_line(r)
    assert flow.calls() == []


def test_bad_folders_are_exit_2(flow: Flow) -> None:
    (flow.tmp / "novm").mkdir()
    r = flow.halb("lab", "up", "--provider", "vagrant", "--dir", "lab", "--vagrant-dir", "novm")
    assert r.returncode == 2
    assert "novm: no Vagrantfile there" in one_error_line(r)
    (flow.tmp / "afile").write_text("x")
    r = flow.up("--dir", "afile")
    assert r.returncode == 2
    assert "afile: not a directory" in one_error_line(r)
    netns_lab = flow.tmp / "netnslab"
    netns_lab.mkdir()
    (netns_lab / "lab.json").write_text("{}")
    r = flow.up("--dir", "netnslab")
    assert r.returncode == 2
    assert "holds a namespace lab" in one_error_line(r)
    assert flow.calls() == []
