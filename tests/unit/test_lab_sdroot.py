"""The pure parts of systemd lab hosts: which units they mask, which packages a fresh LB
host lacks and which cached .deb files serve them, and how the lab's plan and files say
which hosts boot systemd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halb.inventory import load_inventory
from halb.lab.model import Lab, load
from halb.lab.sdroot import (
    ALLOWED_UNITS,
    APT_SOURCE_LINE,
    BASE_CHROOT,
    DEBS_DIR,
    boot_script,
    matching_debs,
    missing_debs,
    parse_purged,
    units_to_mask,
)
from halb.lab.topology import Init, Role, plan
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


def test_only_lb_hosts_boot_systemd_and_the_inventory_says_so(tmp_path: Path) -> None:
    p = plan("sd", lbs=2, masters=1, nodes=1, init=Init.SYSTEMD)
    assert {h.name: h.init for h in p.hosts if h.role is Role.LB} == {
        "lb1": Init.SYSTEMD,
        "lb2": Init.SYSTEMD,
    }
    assert {h.init for h in p.hosts if h.role is not Role.LB} == {Init.PLAIN}
    assert p.init is Init.SYSTEMD
    assert plan("sd").init is Init.PLAIN
    ini = tmp_path / "hosts.ini"
    ini.write_text(hosts_ini(p, tmp_path, "pw-123", "sudo-456"))
    inv = load_inventory(ini)
    assert inv.hosts["lb1"].vars["halb_service_manager"] == "systemd"
    assert inv.hosts["lb2"].vars["halb_service_manager"] == "systemd"
    assert inv.hosts["master1"].vars["halb_service_manager"] == "supervisor"


@pytest.mark.parametrize("init", list(Init))
def test_lab_json_keeps_the_init_of_each_host(tmp_path: Path, init: Init) -> None:
    lab = Lab(plan=plan("sd", 2, 1, 1, init=init), dir=tmp_path, password="x")
    (tmp_path / "lab.json").write_text(json.dumps(lab.to_json()))
    again = load(tmp_path)
    assert [h.init for h in again.plan.hosts] == [h.init for h in lab.plan.hosts]
    hosts = {h["name"]: h for h in lab.to_json()["hosts"]}
    # a systemd host's namespaces belong to its PID 1, not to files in the state dir
    assert (hosts["lb1"]["mount_ns"] is None) is (init is Init.SYSTEMD)
