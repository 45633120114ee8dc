"""Each lab host's private files (its /etc/haproxy, /etc/ssh, /run, /etc/shadow, ... inside
its mount namespace) and the namespaces that hold them."""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
from pathlib import Path

from halb.lab import netns, writer
from halb.lab.model import CONTROL_DIR, Lab
from halb.lab.topology import LabHost
from halb.lab.topology import LabRole as Role

# Per-host private directories, bound over these paths inside the host's mount namespace.
# Only directories: the kernel drops a bind mount in every namespace when the path under
# it is renamed over or unlinked, and the machine replaces files (apt, passwd, sed -i)
# but not these directories.
HOST_DIRS = (
    ("etc-haproxy", "/etc/haproxy"),
    ("etc-keepalived", "/etc/keepalived"),
    ("etc-ssh", "/etc/ssh"),
    ("etc-sysctl.d", "/etc/sysctl.d"),
    ("var-lib-halb", "/var/lib/halb"),
    ("var-log-halb", "/var/log/halb"),
    ("run", "/run"),
)
# Per-host private files. They are not bound (see above) but copied into the upper layer
# of an overlay the host gets over their directory (/etc, /root): the lower layer is the
# machine's directory, so the host keeps seeing the machine's other files there, which
# its shared /usr goes with (alternatives, ld.so.cache, new packages' config), while its
# own copies hide the machine's from the moment the overlay is mounted, before any of its
# processes starts. The machine replacing a file only changes the lower layer; the host
# replacing its own (passwd, useradd, sed -i inside the host) writes its upper layer,
# where a bound file refused the rename. A full copy of /etc per host would have copied
# the machine's /etc/shadow too. The systemd hosts' root is built the same way.
# Every host has its own whole user database (a user the machine adds must not reach a
# host half made); a sudo host's holds its sudo user.
HOST_FILES = (
    ("shadow", "/etc/shadow"),
    ("passwd", "/etc/passwd"),
    ("group", "/etc/group"),
    ("hostname", "/etc/hostname"),
    ("hosts", "/etc/hosts"),
)
# Sudo hosts also get their own sudoers drop-ins and /home.
SUDO_DIRS = (
    ("etc-sudoers.d", "/etc/sudoers.d"),
    ("home", "/home"),
)
# Root's start-up file on a lab host is the distribution's default (it returns at once in
# a non-interactive shell), as on a fresh server, not this machine's own: every command
# halb or Ansible sends over SSH runs in a bash that reads it, and a developer's
# .bashrc (pyenv, conda, ...) would add its cost to every round trip measured in the lab.
ROOT_BASHRC = Path("/root/.bashrc")
SKEL_BASHRC = Path("/etc/skel/.bashrc")
SUDOERS = Path("/etc/sudoers")
# Runs inside the new mount+UTS namespace (already in the host's network namespace).
# $1 hostname, $2 host dir, then pairs (file in $2, path in the host) copied into the
# upper layer of an overlay over the path's directory, `--`, and pairs (dir in $2, path
# in the host) bound. The upper layers are on a tmpfs ($2/layers) mounted in the host's
# mount namespace only; isolation.py finds them there.
HOST_SETUP = r"""
hostname "$1"
d="$2"
shift 2
# Drop the copies of other namespaces' files (every /run/netns entry, other labs' files):
# they would keep those namespaces alive as long as this host exists.
grep ' - nsfs ' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null || true
done
L="$d/layers"
mkdir -p "$L"
mount -t tmpfs -o mode=755 tmpfs "$L"
dirs=""
while [ "$1" != -- ]; do
  dir=$(dirname "$2")
  if [ ! -d "$L/up$dir" ]; then
    mkdir -p "$L/up$dir" "$L/work$dir"
    # the upper directory's owner and mode are the merged directory's
    chown --reference="$dir" "$L/up$dir"; chmod --reference="$dir" "$L/up$dir"
    dirs="$dirs $dir"
  fi
  cp -a "$d/$1" "$L/up$2"
  shift 2
done
shift
for dir in $dirs; do
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$L/up$dir,workdir=$L/work$dir" "$dir"
done
while [ $# -gt 1 ]; do mount --bind "$d/$1" "$2"; shift 2; done
umount -l /sys
mount -t sysfs sysfs /sys
"""


def _copy_dir(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    dst.mkdir(parents=True, exist_ok=True)
    dst.chmod(0o755)


def write_file(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(mode)


def check_sudo_support() -> None:
    """Sudo hosts need sudo, reading drop-ins from /etc/sudoers.d (Debian's default)."""
    if not shutil.which("sudo"):
        raise netns.LabError("the lab's sudo hosts need sudo: apt-get install sudo")
    try:
        text = SUDOERS.read_text()
    except OSError as e:
        raise netns.LabError(f"{SUDOERS}: {e.strerror}") from None
    lines = {ln.strip() for ln in text.splitlines()}
    if not {"@includedir /etc/sudoers.d", "#includedir /etc/sudoers.d"} & lines:
        raise netns.LabError(f"{SUDOERS} does not include /etc/sudoers.d; the sudo hosts need it")


def prepare_sudo_user(d: Path, h: LabHost, uid: int, password_hash: str) -> None:
    """Private passwd, group, shadow entry, sudoers.d and home for the host's sudo user."""
    user = h.sudo_user
    assert user is not None
    write_file(
        d / "passwd",
        writer.passwd_with_user((d / "passwd").read_text(), user, uid, f"/home/{user}"),
        0o644,
    )
    write_file(d / "group", writer.group_with_user((d / "group").read_text(), user, uid), 0o644)
    shadow = (d / "shadow").read_text()
    (d / "shadow").write_text(writer.shadow_with_user(shadow, user, password_hash))
    # sudo ignores drop-ins not owned by root or writable by others: root, 0440.
    _copy_dir(Path("/etc/sudoers.d"), d / "etc-sudoers.d")
    write_file(d / "etc-sudoers.d" / user, writer.sudoers_drop_in(h), 0o440)
    home = d / "home" / user
    home.mkdir(parents=True)
    (d / "home").chmod(0o755)
    os.chown(home, uid, uid)
    home.chmod(0o700)


def prepare_host_files(
    lab: Lab,
    h: LabHost,
    client_pub: str,
    password_hash: str,
    hosts_text: str,
    sudo: tuple[int, str],
) -> str:
    """Fill the host's private /etc and /run copies; returns its public host key.

    `sudo` is (uid, password hash) of the sudo user, for sudo hosts.
    """
    d = lab.host_dir(h.name)
    d.mkdir(parents=True)
    d.chmod(0o755)
    _copy_dir(Path("/etc/haproxy"), d / "etc-haproxy")
    _copy_dir(Path("/etc/keepalived"), d / "etc-keepalived")
    _copy_dir(Path("/etc/sysctl.d"), d / "etc-sysctl.d")
    # run/haproxy: the stats socket directory of the stock Debian haproxy.cfg
    for sub in ("var-lib-halb", "var-log-halb", "lab-logs", "run/sshd", "run/haproxy", CONTROL_DIR):
        (d / sub).mkdir(parents=True, exist_ok=True)
        (d / sub).chmod(0o755)
    ssh = d / "etc-ssh"
    ssh.mkdir()
    ssh.chmod(0o755)
    for f in ("moduli", "ssh_config"):
        if Path("/etc/ssh", f).is_file():
            shutil.copy2(Path("/etc/ssh", f), ssh / f)
    write_file(ssh / "sshd_config", writer.sshd_config(h), 0o644)
    if not h.password:
        write_file(ssh / "authorized_keys.root", client_pub, 0o600)
    key = ssh / "ssh_host_ed25519_key"
    netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(key)])
    shadow = Path("/etc/shadow").read_text()
    root_hash = password_hash if h.password else "*"
    write_file(d / "shadow", writer.shadow_with_root_hash(shadow, root_hash), 0o640)
    with contextlib.suppress(KeyError):
        os.chown(d / "shadow", 0, grp.getgrnam("shadow").gr_gid)
    for db in ("passwd", "group"):
        write_file(d / db, Path("/etc", db).read_text(), 0o644)
    if h.sudo_user:
        prepare_sudo_user(d, h, *sudo)
    write_file(d / "hostname", h.name + "\n", 0o644)
    skel = SKEL_BASHRC.read_text() if SKEL_BASHRC.is_file() else ""
    write_file(d / "root-bashrc", skel, 0o644)
    write_file(d / "hosts", hosts_text, 0o644)
    if h.role is Role.MASTER:
        tls = d / CONTROL_DIR / "tls"
        tls.mkdir(mode=0o700)
        san = (
            f"subjectAltName=IP:{h.address},IP:{lab.vip_internal},IP:{lab.vip_external},"
            f"DNS:{h.name},DNS:lb.kubesphere.local,DNS:kubernetes,DNS:localhost"
        )
        netns.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                "-subj", f"/CN={h.name}", "-addext", san,
                "-keyout", str(tls / "apiserver.key"), "-out", str(tls / "apiserver.crt"),
            ]
        )  # fmt: skip
    return (ssh / "ssh_host_ed25519_key.pub").read_text()


def make_host_namespaces(lab: Lab, h: LabHost) -> None:
    (lab.state_dir / "ns").mkdir(exist_ok=True)
    args = [h.name, str(lab.host_dir(h.name))]
    for sub, target in HOST_FILES:
        args += [sub, target]
    if ROOT_BASHRC.is_file():
        args += ["root-bashrc", str(ROOT_BASHRC)]
    args.append("--")
    for sub, target in HOST_DIRS + (SUDO_DIRS if h.sudo_user else ()):
        args += [sub, target]
    netns.new_host_namespaces(
        h.netns, lab.mount_file(h.name), lab.uts_file(h.name), HOST_SETUP, args
    )
