"""The pure parts of systemd lab hosts: which units they mask, which packages a fresh LB
host lacks and which cached .deb files serve them, and how the lab's plan and files say
which hosts boot systemd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from halb.inventory import load_inventory
from halb.lab import fakeapi
from halb.lab.model import Lab, load
from halb.lab.sdroot import (
    ALLOWED_UNITS,
    APISERVER_UNIT,
    APT_SOURCE_LINE,
    BASE_CHROOT,
    CONSOLE_UNIT,
    CONTROL,
    DEBS_DIR,
    PYTHON,
    STANDIN,
    boot_script,
    matching_debs,
    missing_debs,
    parse_purged,
    standin_units,
    units_to_mask,
)
from halb.lab.topology import Init, plan
from halb.lab.writer import hosts_ini

# `apt-get -s purge --autoremove haproxy keepalived` on Debian 12 (trimmed)
APT_SIMULATION = """\
Reading package lists...
Building dependency tree...
The following packages will be REMOVED:
  haproxy* keepalived* liblua5.3-0* libnl-3-200* libsnmp40*
0 upgraded, 0 newly installed, 5 to remove and 0 not upgraded.
Purg haproxy [2.6.12-1+deb12u4]
Purg keepalived [1:2.2.7-1+b2]
Purg liblua5.3-0 [5.3.6-2]
Purg libnl-3-200 [3.7.0-0.2+b1]
Purg libsnmp40 [5.9.3+dfsg-2+deb12u1]
"""
WANTED = [
    ("haproxy", "2.6.12-1+deb12u4"),
    ("keepalived", "1:2.2.7-1+b2"),
    ("liblua5.3-0", "5.3.6-2"),
    ("libnl-3-200", "3.7.0-0.2+b1"),
    ("libsnmp40", "5.9.3+dfsg-2+deb12u1"),
]
# the names `apt-get download` gives them
FILES = [
    "haproxy_2.6.12-1+deb12u4_amd64.deb",
    "keepalived_1%3a2.2.7-1+b2_amd64.deb",
    "liblua5.3-0_5.3.6-2_amd64.deb",
    "libnl-3-200_3.7.0-0.2+b1_amd64.deb",
    "libsnmp40_5.9.3+dfsg-2+deb12u1_amd64.deb",
]


def test_the_purge_list_is_read_from_apt_simulation_with_versions() -> None:
    assert parse_purged(APT_SIMULATION) == WANTED
    assert parse_purged("Reading package lists...\n") == []


def test_cached_debs_match_exact_versions_and_epochs() -> None:
    assert missing_debs(WANTED, FILES) == []
    assert missing_debs(WANTED, FILES[1:]) == ["haproxy=2.6.12-1+deb12u4"]
    # an older haproxy in the cache is not the installed one, and is stale
    old = "haproxy_2.6.12-1+deb12u3_amd64.deb"
    assert missing_debs(WANTED, [old, *FILES[1:]]) == ["haproxy=2.6.12-1+deb12u4"]
    assert matching_debs(WANTED, [old, *FILES, "Packages"]) == set(FILES)
    # libnl-3-200 is not libnl-genl-3-200
    assert matching_debs(WANTED, ["libnl-genl-3-200_3.7.0-0.2+b1_amd64.deb"]) == set()


def test_every_unit_but_the_allowed_ones_and_the_fresh_packages_is_masked() -> None:
    machine = [
        "postgresql.service",
        "fstrim.timer",
        "systemd-udevd.service",
        "systemd-sysctl.service",
        "systemd-modules-load.service",
        "getty@.service",
        "ssh.service",
        "sshd.service",
        "systemd-journald.service",
        "systemd-poweroff.service",
        "haproxy.service",
        "keepalived.service",
        "multi-user.target",
        "user.slice",
        "postgresql.service",
    ]
    assert units_to_mask(machine) == [
        "fstrim.timer",
        "getty@.service",
        "postgresql.service",
        "systemd-modules-load.service",
        "systemd-sysctl.service",
        "systemd-udevd.service",
    ]
    assert {"ssh.service", "systemd-journald.service"} <= ALLOWED_UNITS


def test_the_base_layer_points_apt_at_the_local_source_only() -> None:
    assert f"deb [trusted=yes] file:{DEBS_DIR} ./\n" == APT_SOURCE_LINE
    assert "policy-rc.d" in BASE_CHROOT and 'dpkg --purge "$@"' in BASE_CHROOT
    assert "rm -rf /var/lib/apt/lists/*" in BASE_CHROOT


def test_the_boot_script_chroots_into_the_overlay_before_systemd() -> None:
    s = boot_script()
    assert "lowerdir=$b/upper:/" in s
    assert s.index("mount -t overlay") < s.index("exec chroot")
    assert s.rstrip().endswith("/lib/systemd/systemd --system")
    assert "container=halb-lab" in s
    for private in ('"$R/run"', '"$R/tmp"', '"$R/dev/shm"', "newinstance"):
        assert private in s  # never the machine's /run, /tmp, /dev/shm or ptys


def test_every_host_but_the_taskbox_boots_systemd_and_the_inventory_says_so(
    tmp_path: Path,
) -> None:
    p = plan("sd", lbs=2, masters=1, nodes=1, init=Init.SYSTEMD)
    assert {h.name: h.init for h in p.hosts} == {
        "taskbox": Init.PLAIN,
        "lb1": Init.SYSTEMD,
        "lb2": Init.SYSTEMD,
        "master1": Init.SYSTEMD,
        "node1": Init.SYSTEMD,
    }
    assert p.init is Init.SYSTEMD
    assert plan("sd").init is Init.PLAIN
    assert {h.init for h in plan("sd").hosts} == {Init.PLAIN}
    ini = tmp_path / "hosts.ini"
    ini.write_text(hosts_ini(p, tmp_path, "pw-123", "sudo-456"))
    inv = load_inventory(ini)
    for host in ("lb1", "lb2", "master1", "node1"):
        assert inv.hosts[host].vars["halb_service_manager"] == "systemd"
    plain = tmp_path / "plain.ini"
    plain.write_text(hosts_ini(plan("sd", 2, 1, 1), tmp_path, "pw-123", "sudo-456"))
    assert load_inventory(plain).hosts["lb1"].vars["halb_service_manager"] == "supervisor"


def test_masters_run_the_apiserver_and_console_stand_ins_as_units() -> None:
    master = standin_units("master1", "10.250.7.21", apiserver=6443, console=30880)
    assert sorted(master) == [APISERVER_UNIT, CONSOLE_UNIT]
    api = master[APISERVER_UNIT]
    assert (
        f"ExecStart={PYTHON} {STANDIN} --name master1 --apiserver 10.250.7.21:6443 "
        f"--cert {CONTROL}/tls/apiserver.crt --key {CONTROL}/tls/apiserver.key\n"
    ) in api
    assert "WantedBy=multi-user.target" in api
    assert "--console 10.250.7.21:30880\n" in master[CONSOLE_UNIT]
    node = standin_units("node1", "10.250.7.31", apiserver=None, console=30880)
    assert list(node) == [CONSOLE_UNIT]
    assert "--apiserver" not in node[CONSOLE_UNIT]
    assert standin_units("lb1", "10.250.7.11", apiserver=None, console=None) == {}


def test_the_boot_script_copies_then_binds_the_control_dir(tmp_path: Path) -> None:
    """The boot script's argument loop, run for real with `cp`/`mount` as recorders."""
    s = boot_script()
    loop = s[s.index("while [ $# -gt 1 ] &&") : s.index('hostname "$h"')]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cp", "mount", "mkdir"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho {tool} "$@" >> "$LOG"\n')
        (bin_dir / tool).chmod(0o755)
    d = tmp_path / "host"
    (d / "etc-ssh").mkdir(parents=True)
    (d / "shadow").write_text("x")
    log = tmp_path / "log"
    args = ["etc-ssh", "/etc/ssh", "shadow", "/etc/shadow", "--", "run/halb-lab", CONTROL]
    subprocess.run(
        ["sh", "-euc", f"d=$1; R=/R; shift\n{loop}", "sh", str(d), *args],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)},
        check=True,
    )
    assert log.read_text().splitlines() == [
        "mkdir -p /R/etc/ssh",
        "mount -t tmpfs tmpfs /R/etc/ssh",
        f"cp -a {d}/etc-ssh/. /R/etc/ssh/",
        f"cp -a {d}/shadow /R/etc/shadow",
        f"mkdir -p /R{CONTROL}",
        f"mount --bind {d}/run/halb-lab /R{CONTROL}",
    ]


@pytest.mark.parametrize("init", list(Init))
def test_lab_json_keeps_the_init_of_each_host(tmp_path: Path, init: Init) -> None:
    lab = Lab(plan=plan("sd", 2, 1, 1, init=init), dir=tmp_path, password="x")
    (tmp_path / "lab.json").write_text(json.dumps(lab.to_json()))
    again = load(tmp_path)
    assert [h.init for h in again.plan.hosts] == [h.init for h in lab.plan.hosts]
    hosts = {h["name"]: h for h in lab.to_json()["hosts"]}
    # a systemd host's namespaces belong to its PID 1, not to files in the state dir
    assert (hosts["lb1"]["mount_ns"] is None) is (init is Init.SYSTEMD)


def test_the_stand_in_runs_alone_with_the_standard_library(tmp_path: Path) -> None:
    """Systemd masters and nodes run a copy of fakeapi.py without halb installed."""
    copy = tmp_path / Path(STANDIN).name
    copy.write_text(Path(fakeapi.__file__).read_text())
    cp = subprocess.run(
        [sys.executable, "-I", "-S", str(copy), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cp.returncode == 0, cp.stderr
    assert "--apiserver" in cp.stdout
