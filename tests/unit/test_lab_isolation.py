"""Whether a lab host sees its own private files: the facts' parser and the judgement."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from halb.lab import isolation
from halb.lab.hostfiles import HOST_DIRS, HOST_FILES, SUDO_DIRS
from halb.lab.netns import LabError

UP = "/srv/lab/state/hosts/lb1/layers/up/etc"
SD_UP = "/srv/lab/state/hosts/lb1/rw/upper"


def view(path: str, fstype: str = "overlay", upper: str = UP, in_upper: bool = True) -> str:
    mount = "/etc" if upper == UP else "/srv/lab/state/hosts/lb1/root"
    return f"{path}\t{fstype}\t{mount}\t{upper}\t{int(in_upper)}"


def test_every_host_keeps_its_user_database_and_names_private() -> None:
    assert isolation.private_paths() == [
        "/etc/shadow", "/etc/passwd", "/etc/group", "/etc/hostname", "/etc/hosts",
    ]  # fmt: skip


def test_no_single_file_is_bound_into_a_host() -> None:
    # directories only: the machine replaces files (rename), and a bound file goes with it
    bound = [target for _, target in HOST_DIRS + SUDO_DIRS]
    assert not set(bound) & set(isolation.private_paths())
    assert all(target.startswith("/etc/") for _, target in HOST_FILES)


def test_parse_facts_reads_one_view_per_line() -> None:
    text = view("/etc/shadow") + "\n" + "/etc/hosts\t-\t-\t-\t0\n" + "garbage\n"
    assert isolation.parse_facts(text) == [
        isolation.FileView("/etc/shadow", "overlay", "/etc", UP, True),
        isolation.FileView("/etc/hosts", "-", "-", "-", False),
    ]


def test_own_files_come_from_this_hosts_upper_layer() -> None:
    paths = isolation.private_paths()
    plain = isolation.parse_facts("\n".join(view(p) for p in paths))
    assert isolation.not_own(plain, "lb1", paths) == []
    systemd = isolation.parse_facts("\n".join(view(p, upper=SD_UP) for p in paths))
    assert isolation.not_own(systemd, "lb1", paths) == []


@pytest.mark.parametrize(
    "line",
    [
        view("/etc/shadow", fstype="ext4", upper="-", in_upper=False),  # the overlay is gone
        view("/etc/shadow", in_upper=False),  # the machine's file shows through
        view("/etc/shadow", upper="/srv/lab/state/hosts/lb10/layers/up/etc"),  # another host's
        view("/etc/shadow", upper="/tmp/view/up"),  # an overlay that is not the lab's
        "/etc/shadow\t-\t-\t-\t0",  # nothing serves it
    ],
)
def test_anything_else_is_not_the_hosts_own(line: str) -> None:
    paths = isolation.private_paths()
    views = isolation.parse_facts("\n".join([line] + [view(p) for p in paths[1:]]))
    assert isolation.not_own(views, "lb1", paths) == ["/etc/shadow"]


def test_a_path_without_facts_is_not_own() -> None:
    assert isolation.not_own([], "lb1", ["/etc/hosts"]) == ["/etc/hosts"]


def test_the_message_names_the_lab_each_host_and_its_files() -> None:
    msg = isolation.isolation_lost("demo", [("lb2", ["/etc/shadow"]), ("lb1", ["/etc/hosts"])])
    assert "lab demo: isolation gone on lb2 (/etc/shadow); lb1 (/etc/hosts)" in msg
    assert "refusing to go on" in msg and "halb lab down --name demo" in msg
    assert LabError("x").exit_status == 1


@pytest.mark.skipif(not shutil.which("findmnt"), reason="needs findmnt (util-linux)")
def test_the_facts_script_sees_the_machines_own_files_as_no_hosts() -> None:
    # run where this test runs: /etc/hostname there is the machine's, no lab host's own
    cp = subprocess.run(
        ["sh", "-c", isolation.FACTS, "sh", "", "/etc/hostname", "/etc/hosts"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    views = isolation.parse_facts(cp.stdout)
    assert [v.path for v in views] == ["/etc/hostname", "/etc/hosts"]
    assert all(v.mount.startswith("/") and v.fstype != "-" for v in views), cp.stdout
    assert isolation.not_own(views, "lb1", ["/etc/hostname", "/etc/hosts"]) == [
        "/etc/hostname", "/etc/hosts",
    ]  # fmt: skip
