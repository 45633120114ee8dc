"""The VM lab's own namespaces: libvirtd, its networks and the VMs never touch the machine.

    ns = VmNs.of(lab_dir)               # names and paths, pure
    start(ns, progress)                 # netns + private mount ns, libvirtd in them
    ns.enter_argv()                     # nsenter prefix: a command in libvirtd's view
    serve_repo(ns, repo_dir)            # the lab's package repository, in the netns only
    stop(ns, progress)                  # VMs, networks, repository, libvirtd, netns, files

libvirtd runs in a network namespace of the lab's own and a private mount namespace: a
tmpfs on /run, an overlay on /var (upper dir in the lab folder), the lab's copy of
/etc/libvirt, and passwd/group copies with a libvirt-qemu user. vagrant-libvirt's
management network (dnsmasq) and the private network then exist only there; the machine's
root namespaces never see a bridge, route, firewall rule or libvirt process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from halb import kinds
from halb.errors import HalbError, InputError
from halb.lab.model import Progress

STATE_DIR = "vm"
LIBVIRTD = "/usr/sbin/libvirtd"
# vagrant-libvirt's management network (its default): the VMs' eth0, and where they
# reach the lab's package repository (the netns's address on that bridge).
MGMT_GATEWAY = "192.168.121.1"
REPO_PORT = 8080
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
TB_SIZE_MIB = 128  # QEMU's TCG translation cache; its 1 GiB default costs ~1 GiB RSS a VM

# Appended to the lab's copy of qemu.conf. QEMU runs as root in the lab's namespaces, with
# no security driver (an AppArmor profile would be loaded into the machine's kernel) and
# console output straight to files (there is no virtlogd in the lab).
QEMU_CONF = """
# halb VM lab
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
"""

# $1 the lab's state dir. Runs in the lab netns, in a fresh private mount namespace.
MOUNTS_SH = r"""
set -eu
s=$1
mount -t tmpfs -o mode=755 halb-vm-run /run
mkdir -p /run/lock /run/libvirt
mount --bind "$s/etc-libvirt" /etc/libvirt
mount --bind "$s/passwd" /etc/passwd
mount --bind "$s/group" /etc/group
mount -t overlay halb-vm-var -o "lowerdir=/var,upperdir=$s/var-upper,workdir=$s/var-work" /var
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/images /var/lib/libvirt/dnsmasq /var/cache/libvirt
ip link set lo up
exec nice -n 19 "$2" --pid-file /run/libvirtd.pid
"""

# libvirt's emulator: QEMU with the TCG translation cache bounded ($0 is this file).
TCG_WRAPPER = """#!/bin/sh
# halb VM lab: QEMU with "-accel tcg" bounded to a {mib} MiB translation cache.
n=$#
while [ "$n" -gt 0 ]; do
  a=$1; shift; n=$((n - 1))
  if [ "$a" = tcg ] && [ "${{prev:-}}" = -accel ]; then a=tcg,tb-size={mib}; fi
  set -- "$@" "$a"; prev=$a
done
exec /usr/bin/qemu-system-x86_64 "$@"
"""


class VmNsError(HalbError):
    pass


@dataclass(frozen=True)
class VmNs:
    name: str  # the netns
    state: Path  # the lab's files: overlay upper, /etc/libvirt copy, logs

    @classmethod
    def of(cls, lab_dir: Path) -> VmNs:
        d = lab_dir.resolve()
        for shadowed in ("/var", "/run", "/etc"):
            if d == Path(shadowed) or d.is_relative_to(shadowed):
                raise InputError(
                    f"{lab_dir}: the VM lab mounts over {shadowed}; give a --dir outside it"
                )
        # The folder goes into the overlay's mount options: a comma would start another
        # option there (another upper dir), a backslash escapes.
        if not str(d).isprintable() or any(c in str(d) for c in ",\\"):
            raise InputError(
                f"{kinds.one_line(str(lab_dir))}: the VM lab's folder is part of a mount "
                "option; give a --dir without commas, backslashes or control characters"
            )
        digest = hashlib.sha256(str(d).encode()).hexdigest()[:8]
        return cls(f"halbvm-{digest}", d / STATE_DIR)

    @property
    def pid_file(self) -> Path:
        return self.state / "libvirtd.pid"

    @property
    def repo_pid_file(self) -> Path:
        return self.state / "repo.pid"

    @property
    def log(self) -> Path:
        return self.state / "libvirtd.log"

    @property
    def emulator(self) -> Path:
        return self.state / "qemu-tcg"

    @property
    def dotfile(self) -> Path:
        return self.state / "vagrant"  # VAGRANT_DOTFILE_PATH: the machines' ids

    def libvirtd_pid(self) -> int | None:
        """libvirtd's pid if it is alive and in this lab's netns."""
        return self.pid_in_netns(self.pid_file)

    def pid_in_netns(self, pid_file: Path) -> int | None:
        """The pid `pid_file` names if that process is alive and in this lab's netns."""
        pid = _read_pid(pid_file)
        return pid if pid is not None and _in_netns(pid, self.name) else None

    def enter_argv(self, cwd: Path | None = None) -> list[str]:
        """nsenter into libvirtd's netns and mounts, in `cwd` (entering a mount namespace
        otherwise leaves the command in /)."""
        pid = self.libvirtd_pid()
        if pid is None:
            raise VmNsError(
                f"the VM lab's libvirtd is not running (netns {self.name}); "
                "`halb lab down --provider vagrant` then `halb lab up --provider vagrant`"
            )
        wd = [f"--wd={cwd}"] if cwd is not None else []
        return ["nsenter", "-t", str(pid), "-n", "-m", *wd, "--"]


def repo_url() -> str:
    return f"http://{MGMT_GATEWAY}:{REPO_PORT}/"


def tcg_wrapper(tb_size_mib: int = TB_SIZE_MIB) -> str:
    return TCG_WRAPPER.format(mib=int(tb_size_mib))


def with_user(passwd: str, group: str) -> tuple[str, str]:
    """passwd and group texts that have a libvirt-qemu user (libvirtd looks it up even when
    QEMU runs as root); unchanged when they do."""
    if not any(line.startswith("libvirt-qemu:") for line in group.splitlines()):
        group = group.rstrip("\n") + "\nlibvirt-qemu:x:64055:\n"
    if not any(line.startswith("libvirt-qemu:") for line in passwd.splitlines()):
        passwd = passwd.rstrip("\n") + (
            "\nlibvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
        )
    return passwd, group


# --- effects -----------------------------------------------------------------------------


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def _in_netns(pid: int, name: str) -> bool:
    ino = _netns_inode(name)
    try:
        return ino is not None and os.stat(f"/proc/{pid}/ns/net").st_ino == ino
    except OSError:
        return False


def netns_exists(name: str) -> bool:
    return _netns_inode(name) is not None


def _run(argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def start(ns: VmNs, progress: Progress, tb_size_mib: int = TB_SIZE_MIB) -> None:
    """The netns, the mounts and libvirtd; raises (after undoing it) if libvirtd is not up
    within START_TIMEOUT."""
    if ns.libvirtd_pid() is not None:
        return
    if shutil.which("nsenter") is None or not os.path.exists(LIBVIRTD):
        raise VmNsError(
            "the VM lab needs libvirtd and nsenter: `make vm-debs` "
            "(libvirt-daemon-system, util-linux)"
        )
    _prepare(ns, tb_size_mib)
    if not netns_exists(ns.name):
        r = _run(["ip", "netns", "add", ns.name])
        if r.returncode != 0:
            raise VmNsError(f"ip netns add {ns.name} failed: {r.stderr.strip()}")
    progress(f"starting libvirtd in netns {ns.name} (log {ns.log})")
    with open(ns.log, "ab") as log:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "unshare", "-m", "--propagation", "private",
             "sh", "-c", MOUNTS_SH, "mounts", str(ns.state), LIBVIRTD],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    # ip netns exec, unshare and sh each exec the next: this pid becomes libvirtd's.
    ns.pid_file.write_text(f"{p.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        if ns.libvirtd_pid() is None:  # not yet in the netns (ip netns exec runs first)
            time.sleep(0.2)
            continue
        r = _run([*ns.enter_argv(), "virsh", "-c", "qemu:///system", "version"], 15)
        if r.returncode == 0:
            return
        time.sleep(1)
    stop(ns, lambda _: None)
    raise VmNsError(f"libvirtd did not start within {START_TIMEOUT:g} s in {ns.name}: see {ns.log}")


def _prepare(ns: VmNs, tb_size_mib: int) -> None:
    for d in (ns.state, ns.state / "var-upper", ns.state / "var-work"):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(ns.state, 0o700)
    etc = ns.state / "etc-libvirt"
    if not etc.is_dir():
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        with (etc / "qemu.conf").open("a") as f:
            f.write(QEMU_CONF)
        # The packaged "default" network (virbr0) is not the lab's: never started here.
        with contextlib.suppress(FileNotFoundError):
            (etc / "qemu" / "networks" / "autostart" / "default.xml").unlink()
    passwd, group = with_user(Path("/etc/passwd").read_text(), Path("/etc/group").read_text())
    (ns.state / "passwd").write_text(passwd)
    (ns.state / "group").write_text(group)
    ns.emulator.write_text(tcg_wrapper(tb_size_mib))
    ns.emulator.chmod(0o755)


def serve_repo(ns: VmNs, repo: Path) -> None:
    """The lab's package repository on port REPO_PORT, inside the lab netns only."""
    if ns.pid_in_netns(ns.repo_pid_file) is not None:
        return
    with open(ns.state / "repo.log", "ab") as log:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "nice", "-n", "19", "python3", "-m",
             "http.server", "--bind", "0.0.0.0", "--directory", str(repo), str(REPO_PORT)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    ns.repo_pid_file.write_text(f"{p.pid}\n")


def domains(ns: VmNs) -> list[tuple[str, str]]:
    """(name, state) of every libvirt domain in the lab, e.g. ("vagrant_lb1", "running")."""
    if ns.libvirtd_pid() is None:
        return []
    r = _run([*ns.enter_argv(), "virsh", "-c", "qemu:///system", "list", "--all"], 30)
    out = []
    for line in r.stdout.splitlines()[2:]:
        parts = line.split(None, 2)
        if len(parts) == 3:
            out.append((parts[1], parts[2].strip()))
    return out


def stop(ns: VmNs, progress: Progress) -> list[str]:
    """Everything `start` made, also after a killed `up`; safe to run twice."""
    done: list[str] = []
    # A `vagrant up` left running by a killed `halb lab up` goes first: it would go on
    # creating VMs while they are removed.
    stopped = _stop_clients(ns)
    if stopped:
        done.append(f"stopped {stopped} vagrant/ssh processes in {ns.name}")
    pid = ns.libvirtd_pid()
    if pid is not None:
        virsh = [*ns.enter_argv(), "virsh", "-c", "qemu:///system"]
        for name, _state in domains(ns):
            _run([*virsh, "destroy", name], 60)
            _run([*virsh, "undefine", name, "--remove-all-storage"], 60)
            done.append(f"VM {name} removed")
        nets = _run([*virsh, "net-list", "--name"]).stdout.split()
        for net in nets:
            _run([*virsh, "net-destroy", net])
        if nets:
            done.append(f"networks {', '.join(nets)} removed")
    for what, p in (("repository", ns.pid_in_netns(ns.repo_pid_file)), ("libvirtd", pid)):
        if p is not None:
            _kill(p)
            done.append(f"{what} stopped")
    if netns_exists(ns.name):
        # Whatever is left in the lab's netns is the lab's (QEMU, dnsmasq): stopped by pid.
        left = _run(["ip", "netns", "pids", ns.name]).stdout.split()
        for p in (int(x) for x in left if x.isdigit()):
            _kill(p)
        if left:
            done.append(f"{len(left)} processes stopped in {ns.name}")
        r = _run(["ip", "netns", "del", ns.name])
        if r.returncode != 0:
            raise VmNsError(f"ip netns del {ns.name} failed: {r.stderr.strip()}")
        done.append(f"netns {ns.name} removed")
    if ns.state.exists():
        shutil.rmtree(ns.state)
        done.append(f"removed {ns.state}")
    for line in done:
        progress(line)
    return done


# What libvirtd and the repository run in the lab's netns; anything else there is a client.
_SERVERS = frozenset({"libvirtd", "qemu-system-x86", "dnsmasq", "python3", "ip"})


def _stop_clients(ns: VmNs) -> int:
    if not netns_exists(ns.name):
        return 0
    count = 0
    for text in _run(["ip", "netns", "pids", ns.name]).stdout.split():
        if not text.isdigit():
            continue
        try:
            comm = Path(f"/proc/{text}/comm").read_text().strip()
        except OSError:
            continue
        if comm not in _SERVERS:
            _kill(int(text))
            count += 1
    return count


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
