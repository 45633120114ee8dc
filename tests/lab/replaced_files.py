"""Run by test_replaced_files.py inside a private view of the machine (a pid + mount
namespace whose root is an overlay of the machine's root with its upper layer on a
tmpfs): brings a lab up, replaces the machine's /etc/shadow, passwd, group, hosts and
hostname there by rename, as apt, passwd, useradd and sed -i do, and reports as JSON what
the lab hosts see and whether every kind of login and `halb preflight` still work.

Usage: python replaced_files.py NAME DIR INIT   (INIT: plain or systemd)

It refuses to start (exit 3) unless / is such an overlay: a rename here must never reach
the machine's real /etc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from halb import lab as labmod
from halb.lab import Lab, isolation, netns
from halb.lab.topology import Init

PRIVATE = isolation.private_paths()
ALIEN = "halbalien"  # the user the machine "installs"
CANARY = "/etc/halb-view-canary"


def in_private_view() -> bool:
    """/ is an overlay whose upper layer is a tmpfs (the view the test made)."""
    fields = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if left.split()[4] == "/":
            fields = {"fstype": right.split()[0], "options": right.split()[2]}
    return fields.get("fstype") == "overlay" and "upperdir=" in fields.get("options", "")


def replace(path: str, text: str, tmp_suffix: str) -> None:
    """Write a new file beside `path` and rename it over `path`."""
    p = Path(path)
    tmp = p.with_name(p.name + tmp_suffix)
    st = p.stat()
    tmp.write_text(text)
    os.chown(tmp, st.st_uid, st.st_gid)
    tmp.chmod(st.st_mode & 0o7777)
    os.replace(tmp, p)


def replace_machine_files() -> None:
    """What a package adding a system user, `passwd` and `sed -i` do to the machine."""
    shadow = Path("/etc/shadow").read_text().splitlines(keepends=True)
    shadow = [
        ("root:$6$machine$changedbythemachine:" + ln.split(":", 2)[2])
        if ln.startswith("root:")
        else ln
        for ln in shadow
    ]
    shadow.append(f"{ALIEN}:!:20000:0:99999:7:::\n")
    replace("/etc/shadow", "".join(shadow), "+")  # shadow-utils: /etc/shadow+ then rename
    passwd = Path("/etc/passwd").read_text()
    replace("/etc/passwd", passwd + f"{ALIEN}:x:999:999::/nonexistent:/usr/sbin/nologin\n", "+")
    replace("/etc/group", Path("/etc/group").read_text() + f"{ALIEN}:x:999:\n", "+")
    for f, expr in (("/etc/hosts", "$a 10.255.255.1 machine-only"), ("/etc/hostname", "s/.*/m/")):
        subprocess.run(["sed", "-i", expr, f], check=True)


def views(lab: Lab) -> dict[str, dict[str, str]]:
    """{host: {path: sha256}} of the private files as each host sees them."""
    out = {}
    for h in lab.plan.inventory_hosts:
        cp = lab.run(h.name, ["sha256sum", *PRIVATE])
        sums = {line.split()[1]: line.split()[0] for line in cp.stdout.splitlines()}
        out[h.name] = sums
    return out


# Mount points that are files, in a host's view; /dev, /proc and /sys are the host's own.
FILE_MOUNTS = r"""
findmnt -rn -o TARGET | while read -r t; do
  case "$t" in /dev/*|/proc/*|/sys/*) continue;; esac
  if [ -f "$t" ]; then echo "$t"; fi
done
"""


def file_mounts(lab: Lab) -> dict[str, list[str]]:
    """{host: files bound over a path of its view}: none may be, the kernel drops those."""
    return {
        h.name: lab.run(h.name, ["sh", "-c", FILE_MOUNTS]).stdout.split()
        for h in lab.plan.inventory_hosts
    }


def machine_view() -> dict[str, str]:
    cp = subprocess.run(["sha256sum", *PRIVATE], capture_output=True, text=True, check=True)
    return {line.split()[1]: line.split()[0] for line in cp.stdout.splitlines()}


def halb_cli(lab: Lab, *args: str, host: str = "taskbox") -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "halb"
    return lab.run(host, [str(exe) if exe.exists() else "halb", *args], timeout=180)


def logins(lab: Lab) -> dict[str, Any]:
    """Every kind of SSH login from the taskbox: the lab key as root, root by password,
    the sudo user by password then root through `sudo -S`."""
    out: dict[str, Any] = {}
    base = ["-F", "/dev/null", "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"]  # fmt: skip
    show = "id -un; cat /etc/hostname"
    for h in lab.plan.inventory_hosts:
        if h.sudo_user:
            argv = ["sshpass", "-e", "ssh", *base, "-o", "PubkeyAuthentication=no",
                    f"{h.sudo_user}@{h.address}", f"{show}; sudo -k -S -p '' id -un"]  # fmt: skip
            cp = lab.run("taskbox", argv, input=lab.sudo_password + "\n",
                         env={"SSHPASS": lab.sudo_password}, timeout=30)  # fmt: skip
            kind = "sudo"
        elif h.password:
            argv = ["sshpass", "-e", "ssh", *base, "-o", "PubkeyAuthentication=no",
                    f"root@{h.address}", show]  # fmt: skip
            cp = lab.run("taskbox", argv, env={"SSHPASS": lab.password}, timeout=30)
            kind = "root-password"
        else:
            cp = lab.run("taskbox", [*lab.ssh_argv(h.name), show], timeout=30)
            kind = "key"
        out[h.name] = {"kind": kind, "rc": cp.returncode, "out": cp.stdout.split(),
                       "err": cp.stderr.strip()[-300:]}  # fmt: skip
    return out


def preflight(lab: Lab) -> dict[str, Any]:
    cp = halb_cli(lab, "preflight", "--json", "-c", str(lab.spec))
    try:
        doc = json.loads(cp.stdout)
    except json.JSONDecodeError:
        doc = {"checks": []}
    fails = [c for c in doc["checks"] if c.get("level") == "fail"]
    return {"rc": cp.returncode, "fails": fails, "err": cp.stderr.strip()[-500:]}


def lab_status(lab: Lab) -> dict[str, Any]:
    cp = halb_cli(lab, "lab", "status", "--name", lab.name, host="taskbox")
    return {"rc": cp.returncode, "out": cp.stdout, "err": cp.stderr.strip()}


def break_isolation(lab: Lab, host: str) -> int:
    """Take `host`'s own files away, as a dropped bind did: the machine's show through.
    Returns the exit status of doing so."""
    enter = isolation.mount_enter(lab.plan.host(host).netns)
    if enter is None:
        return -1
    argv, init = enter
    if init:  # a systemd host: the view's /etc/shadow bound over the one in its root
        root = os.readlink(f"/proc/{init}/root")
        script = f'mount --bind /etc/shadow "{root}/etc/shadow"'
    else:
        script = "umount -l /etc"
    return netns.run([*argv, "sh", "-c", script], check=False).returncode


def main() -> int:
    name, lab_dir, init = sys.argv[1], Path(sys.argv[2]), Init(sys.argv[3])
    report: dict[str, Any] = {"init": init.value, "name": name}
    if not in_private_view():
        print("not in a private view of the machine: refusing to replace /etc files")
        return 3
    # a file only the view has: the hosts see it when their lower layer is the view's /etc
    Path(CANARY).write_text(name + "\n")
    lab = labmod.up(name, lab_dir, lbs=2, masters=1, nodes=2, init=init)
    try:
        report["hosts"] = {
            h.name: {"sudo": bool(h.sudo_user), "password": h.password}
            for h in lab.plan.inventory_hosts
        }
        report["canary"] = {
            h.name: lab.run(h.name, ["cat", CANARY]).stdout.strip()
            for h in lab.plan.inventory_hosts
        }
        report["file_mounts"] = file_mounts(lab)
        report["machine_before"] = machine_view()
        report["before"] = views(lab)
        replace_machine_files()
        report["machine_after"] = machine_view()
        report["after"] = views(lab)
        report["foreign"] = {
            h.name: isolation.foreign_files(h.netns, h.name) for h in lab.plan.inventory_hosts
        }
        report["status"] = lab_status(lab)
        report["logins"] = logins(lab)
        report["preflight"] = preflight(lab)
        # and when a host's own files are gone, status says so and exec refuses
        victim = "lb2"
        report["broken"] = {
            "rc": break_isolation(lab, victim),
            "foreign": isolation.foreign_files(lab.plan.host(victim).netns, victim),
            "status": lab_status(lab),
        }
        marker = f"/tmp/halb-exec-ran-{name}"
        cp = halb_cli(lab, "lab", "exec", "--name", lab.name, "--host", victim, "--",
                      "touch", marker)  # fmt: skip
        ran = lab.run(victim, ["test", "-e", marker]).returncode == 0
        report["broken"]["exec"] = {"rc": cp.returncode, "err": cp.stderr.strip(), "ran": ran}
    finally:
        report["down"] = labmod.down(name, lab_dir)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
