"""What a lab host that boots systemd is made of (pure): the units it may run, the
packages a fresh LB host lacks, and the shell scripts that build its private root.

A systemd host never runs on the machine's own root. Its root is an overlay: the
machine's `/` at the bottom, the lab's base layer above it (HAProxy and keepalived
purged, apt pointed at a local file repository), and a tmpfs on top for what the host
writes. systemd runs in that root as PID 1 of its own pid, mount, UTS, IPC, network
and cgroup namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from halb.paths import LAB_CONTROL_DIR

# The packages `halb deploy` installs on a fresh LB host.
FRESH_PACKAGES = ("haproxy", "keepalived")
# Where the .deb files and their index live, on the machine and inside the hosts.
DEBS_DIR = "/var/cache/halb-lab/debs"
APT_SOURCE = "/etc/apt/sources.list.d/halb-lab.list"
APT_SOURCE_LINE = f"deb [trusted=yes] file:{DEBS_DIR} ./\n"
CONTAINER = "halb-lab"  # systemd's $container: it then skips what only a real machine does

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".mount", ".automount", ".swap")
# A lab LB host runs only what a server of its role needs; every other unit of the
# machine is masked in its root (a database, timers that trim or scrub the machine's
# disks, udev, sysctl and module loading that would reach the shared kernel).
ALLOWED_UNITS = frozenset(
    {
        "ssh.service",
        "sshd.service",  # its alias
        "systemd-journald.service",
        "systemd-journald.socket",
        "systemd-journald-dev-log.socket",
        "systemd-journal-flush.service",
        "systemd-tmpfiles-setup.service",
        # `systemctl poweroff` and SIGRTMIN+3 go through these
        "systemd-halt.service",
        "systemd-poweroff.service",
        "systemd-reboot.service",
    }
)
# Installed later by `halb deploy`: masking them would make the install fail to start them.
NEVER_MASKED = tuple(f"{p}." for p in FRESH_PACKAGES) + tuple(f"{p}@" for p in FRESH_PACKAGES)


def units_to_mask(unit_files: Iterable[str]) -> list[str]:
    """The machine's unit file names that a lab LB host masks (sorted, no duplicates)."""
    out = set()
    for name in unit_files:
        if not name.endswith(UNIT_SUFFIXES) or name in ALLOWED_UNITS:
            continue
        if name.startswith(NEVER_MASKED):
            continue
        out.add(name)
    return sorted(out)


_PURG = re.compile(r"^Purg (\S+) \[([^\]]+)\]", re.M)


def parse_purged(apt_simulation: str) -> list[tuple[str, str]]:
    """(package, version) from `apt-get -s purge --autoremove ...` output ("Purg p [v]")."""
    return [(m.group(1), m.group(2)) for m in _PURG.finditer(apt_simulation)]


def deb_prefix(package: str, version: str) -> str:
    """The start of the file name `apt-get download` gives `package=version` (before the
    architecture): an epoch's ':' is written %3a."""
    return f"{package}_{version.replace(':', '%3a')}_"


def matching_debs(wanted: Iterable[tuple[str, str]], files: Iterable[str]) -> set[str]:
    """The .deb files among `files` that are one of the wanted package versions."""
    prefixes = tuple(deb_prefix(p, v) for p, v in wanted)
    return {f for f in files if f.endswith(".deb") and f.startswith(prefixes)}


def missing_debs(wanted: Iterable[tuple[str, str]], files: Iterable[str]) -> list[str]:
    """`package=version` for each wanted package that has no .deb among `files`."""
    have = [f for f in files if f.endswith(".deb")]
    return [f"{p}={v}" for p, v in wanted if not any(f.startswith(deb_prefix(p, v)) for f in have)]


# Builds the base layer: an overlay over the machine's root whose upper dir ($1/upper, on
# a tmpfs) ends up holding only the purge and the apt source. Runs in fresh pid, mount,
# network, UTS and IPC namespaces, so no maintainer script can see the machine's
# processes; policy-rc.d refuses every service start or stop during the purge.
# $1 base dir, $2 debs dir, $3 the script to run in the chroot, then the packages.
BASE_SETUP = r"""
b=$1; debs=$2; inner=$3; shift 3
R=$b/root
mkdir -p "$b/upper" "$b/work" "$R"
mount -t overlay overlay -o "lowerdir=/,upperdir=$b/upper,workdir=$b/work" "$R"
mount -t proc proc "$R/proc"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero full random urandom; do
  : > "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"
done
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
rm -rf "$R$debs"; mkdir -p "$R$debs"; cp "$debs"/*.deb "$debs/Packages" "$R$debs/"
exec chroot "$R" /bin/sh -euc "$inner" sh "$@"
"""

BASE_CHROOT = (
    r"""
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
DEBIAN_FRONTEND=noninteractive dpkg --purge "$@" >/dev/null
rm -f /usr/sbin/policy-rc.d
off=/etc/apt/sources.list.halb-lab-off
mkdir -p "$off"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
  if [ -e "$f" ]; then mv "$f" "$off/"; fi
done
"""
    + f"printf '%s' '{APT_SOURCE_LINE}' > {APT_SOURCE}\n"
    + r"""
rm -rf /var/lib/apt/lists/*
apt-get update -qq
"""
)

# Boots one host. Runs as the first process of new pid, mount, UTS, IPC and cgroup
# namespaces (already in the host's network namespace, in the host's own cgroup).
# $1 hostname, $2 base dir, $3 host dir, then pairs (file or dir in $3, path in the root)
# copied into the root before boot, then `--` and pairs (dir in $3, path in the root)
# bound into it: those stay shared with the lab outside (the stand-ins' control files).
BOOT = r"""
h=$1; b=$2; d=$3; shift 3
R=$d/root
mkdir -p "$d/rw" "$R"
mount -t tmpfs -o mode=755 tmpfs "$d/rw"
mkdir "$d/rw/upper" "$d/rw/work"
mount -t overlay overlay -o "lowerdir=$b/upper:/,upperdir=$d/rw/upper,workdir=$d/rw/work" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero full random urandom tty; do
  : > "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
: > "$R/dev/console"; mount --bind "$d/console.log" "$R/dev/console"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
while [ $# -gt 1 ] && [ "$1" != -- ]; do
  # a directory replaces the machine's (a tmpfs over it), a file is copied over it
  if [ -d "$d/$1" ]; then
    mkdir -p "$R$2"; mount -t tmpfs tmpfs "$R$2"; cp -a "$d/$1/." "$R$2/"
  else
    cp -a "$d/$1" "$R$2"
  fi
  shift 2
done
if [ "${1-}" = -- ]; then shift; fi
while [ $# -gt 1 ]; do mkdir -p "$R$2"; mount --bind "$d/$1" "$R$2"; shift 2; done
hostname "$h"
"""
# the last line is added by boot_script: it names $container
BOOT_EXEC = (
    'exec chroot "$R" /usr/bin/env -i container={container} LANG=C.UTF-8 '
    "/lib/systemd/systemd --system\n"
)


def boot_script() -> str:
    return BOOT + BOOT_EXEC.format(container=CONTAINER)


# Puts the shell into the host's cgroup ($1), then runs the rest of its arguments: the
# cgroup namespace made next has that cgroup as its root.
JOIN_CGROUP = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'


# --- the stand-ins of masters and nodes ---------------------------------------------

# On masters and nodes the stand-ins (halb/lab/fakeapi.py, standard library only) run as
# units with the machine's python3, from a copy in the host's root.
STANDIN_DIR = "/opt/halb-lab"
STANDIN = f"{STANDIN_DIR}/fakeapi.py"
PYTHON = "/usr/bin/python3"
# Bound from the host's state dir, so Lab.set_control and the drills' fault script change
# the stand-ins' answers as on a supervisor host; it also holds the master's TLS key.
CONTROL = LAB_CONTROL_DIR
APISERVER_UNIT = "halb-lab-apiserver.service"
CONSOLE_UNIT = "halb-lab-console.service"

_UNIT = """[Unit]
Description=halb lab stand-in for {what}
After=network.target

[Service]
ExecStart={python} {standin} --name {name} {args}
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def standin_units(
    name: str, address: str, *, apiserver: int | None, console: int | None
) -> dict[str, str]:
    """{unit file name: text}: the apiserver stand-in (TLS, /readyz) when `apiserver` is a
    port, the console stand-in when `console` is. Names and addresses come from the lab's
    own plan, never from user input."""
    units = {}
    if apiserver is not None:
        tls = f"{CONTROL}/tls"
        units[APISERVER_UNIT] = _UNIT.format(
            what="kube-apiserver (TLS /readyz /livez /healthz)",
            python=PYTHON,
            standin=STANDIN,
            name=name,
            args=f"--apiserver {address}:{apiserver} "
            f"--cert {tls}/apiserver.crt --key {tls}/apiserver.key",
        )
    if console is not None:
        units[CONSOLE_UNIT] = _UNIT.format(
            what="the KubeSphere console (HTTP)",
            python=PYTHON,
            standin=STANDIN,
            name=name,
            args=f"--console {address}:{console}",
        )
    return units
