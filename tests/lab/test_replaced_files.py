"""Lab hosts keep their own /etc/shadow, passwd, group, hosts and hostname when the
machine replaces its copies by rename (apt adding a system user, `passwd`, `sed -i`).

The machine's real /etc is never touched: the whole lab runs inside a private view made
here, new pid + mount namespaces whose root is an overlay of the machine's root with the
upper layer on a tmpfs. The renames there land in that tmpfs; the hosts' lower layers are
the view's files, so they see exactly what they would see on the machine. When the view's
first process ends, the kernel ends every process of the view (the lab's daemons and
systemd hosts too), so nothing outlives the test even if it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from halb import lab as labmod
from halb.lab import hostfiles, isolation
from halb.lab.sdhost import remove_cgroups

pytestmark = pytest.mark.lab

DRIVER = Path(__file__).with_name("replaced_files.py")
REPO = Path(__file__).resolve().parents[2]
# Runs as PID 1 of the view: $1 an empty dir for the view's tmpfs, $2 a dir that is a
# tmpfs in the view (the lab's: a mount namespace cannot be bound onto a file of an
# overlay), then the command.
VIEW = r"""
W=$1; L=$2; shift 2
mount -t tmpfs -o mode=755 tmpfs "$W"
mkdir "$W/up" "$W/work" "$W/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/up,workdir=$W/work" "$W/root"
R=$W/root
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t proc proc "$R/proc"
mkdir -p "$R$L" "$R/.machine"
mount -t tmpfs -o mode=755 tmpfs "$R$L"
cd "$R"
pivot_root . .machine
cd /
umount -l /.machine
set +e
"$@"
rc=$?
exit $rc
"""


def digests() -> dict[str, str]:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in isolation.private_paths()}


def in_view(tmp_path: Path, init: str) -> dict[str, Any]:
    if os.geteuid() != 0 or not labmod.ip_netns_available():
        pytest.skip("the lab needs root and `ip netns`")
    name = labmod.pick_name("r")
    view = tmp_path / "view"
    view.mkdir()
    labs = tmp_path / "labs"
    real_before = digests()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # One CPU for the whole view: this kernel numbers new mount namespaces from per-CPU
    # batches, and refuses (EINVAL) to bind a namespace it takes for older than the
    # binder's own, which the lab does for every host from inside the view (measured: 26 of
    # 30 `unshare --mount=FILE` failed in a nested namespace unpinned, 0 of 40 pinned).
    cpu = str(min(os.sched_getaffinity(0)))
    try:
        cp = subprocess.run(
            ["taskset", "-c", cpu, "unshare", "--mount", "--pid", "--fork", "--kill-child",
             "--propagation", "private", "--", "sh", "-euc", VIEW, "sh", str(view), str(labs),
             sys.executable, str(DRIVER), name, str(labs / "lab"), init],
            capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path),
        )  # fmt: skip
    finally:
        remove_cgroups(name)  # systemd hosts' cgroups, had the view ended early
    # the machine's own files are those of before, byte for byte
    assert digests() == real_before
    assert cp.returncode == 0, f"{cp.stdout[-2000:]}\n{cp.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(cp.stdout.splitlines()[-1])
    return report


def check_survived(r: dict[str, Any]) -> None:
    private = isolation.private_paths()
    assert r["file_mounts"] == {h: [] for h in r["hosts"]}
    # the hosts' lower layer is the view's /etc (they see a file only the view has) ...
    assert r["canary"] == {h: r["name"] for h in r["hosts"]}
    # ... the view's files really were replaced (new inodes, new contents) ...
    for p in private:
        assert r["machine_after"][p] != r["machine_before"][p], p
    # ... and every host still sees its own, none of the machine's new ones
    assert r["after"] == r["before"]
    for host, sums in r["after"].items():
        assert sorted(sums) == sorted(private), host
        for p in ("/etc/shadow", "/etc/hostname", "/etc/hosts"):
            assert sums[p] != r["machine_after"][p], (host, p)
    assert r["foreign"] == {h: [] for h in r["hosts"]}
    assert r["status"]["rc"] == 0, r["status"]
    assert "ISOLATION GONE" not in r["status"]["out"]
    # every kind of login still gets in, to the host itself
    kinds = {v["kind"] for v in r["logins"].values()}
    assert kinds == {"key", "root-password", "sudo"}, r["logins"]
    for host, login in r["logins"].items():
        assert login["rc"] == 0, (host, login)
        if login["kind"] == "sudo":
            assert login["out"] == ["halbops", host, "root"], login
        else:
            assert login["out"] == ["root", host], login
    assert r["preflight"]["rc"] == 0 and not r["preflight"]["fails"], r["preflight"]
    # a host whose own files were taken away: named by status, refused by exec
    broken = r["broken"]
    assert broken["rc"] == 0, broken
    assert "/etc/shadow" in broken["foreign"]
    assert broken["status"]["rc"] == 1
    assert "lb2" in broken["status"]["out"] and "ISOLATION GONE" in broken["status"]["out"]
    assert broken["exec"]["rc"] == 1 and not broken["exec"]["ran"], broken["exec"]
    assert "isolation gone on lb2" in broken["exec"]["err"], broken["exec"]
    assert "/etc/shadow" in broken["exec"]["err"]


def test_plain_hosts_keep_their_files_when_the_machine_replaces_them(tmp_path: Path) -> None:
    r = in_view(tmp_path, "plain")
    check_survived(r)
    # with /etc no longer the host's overlay, every private file is the machine's
    assert r["broken"]["foreign"] == isolation.private_paths()


def test_systemd_hosts_keep_their_files_when_the_machine_replaces_them(tmp_path: Path) -> None:
    r = in_view(tmp_path, "systemd")
    check_survived(r)
    assert r["broken"]["foreign"] == ["/etc/shadow"]


def test_up_refuses_hosts_that_do_not_see_their_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0 or not labmod.ip_netns_available():
        pytest.skip("the lab needs root and `ip netns`")
    # hosts set up without their overlay over /etc: they would see the machine's files
    mount = 'mount -t overlay overlay -o "lowerdir=$dir'
    assert mount in hostfiles.HOST_SETUP
    monkeypatch.setattr(hostfiles, "HOST_SETUP", hostfiles.HOST_SETUP.replace(mount, ": " + mount))
    name = labmod.pick_name("r")
    with pytest.raises(labmod.LabError) as e:
        labmod.up(name, tmp_path / "lab", lbs=2, masters=1, nodes=1)
    assert f"lab {name}: isolation gone on lb1 (/etc/shadow, /etc/passwd" in str(e.value)
    assert "refusing to go on" in str(e.value)
    # and nothing of it is left
    assert name not in labmod.existing_labs()
    assert not (tmp_path / "lab").exists()
