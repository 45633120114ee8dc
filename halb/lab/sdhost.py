"""Lab hosts that boot systemd: the local package source, the base layer, boot and halt.

Machine safety: systemd, dpkg and every maintainer script run only inside a private
overlay root (see sdroot.py) in their own namespaces; nothing here runs `systemctl`,
`dpkg` or `apt-get install` against the machine's root. On the machine itself this
module only runs `apt-get -s` (a simulation), `apt-get download` (downloads .deb files)
and `dpkg-scanpackages` (indexes them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from halb.files import atomic_write
from halb.lab import fakeapi, netns
from halb.lab.hostfiles import HOST_FILES, SUDO_DIRS
from halb.lab.model import CONTROL_DIR, Lab
from halb.lab.netns import LabError
from halb.lab.sdroot import (
    BASE_CHROOT,
    BASE_SETUP,
    CONTROL,
    DEBS_DIR,
    FRESH_PACKAGES,
    JOIN_CGROUP,
    PYTHON,
    STANDIN,
    STANDIN_DIR,
    UNIT_SUFFIXES,
    boot_script,
    matching_debs,
    missing_debs,
    parse_purged,
    units_to_mask,
)
from halb.lab.topology import LabHost
from halb.transport.netns import nsenter_argv

SYSTEMD = Path("/lib/systemd/systemd")
UNIT_DIRS = tuple(
    Path(d) for d in ("/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system")
)
CGROUP_PARENT = "halb-lab"
DPKG_STATUS = "/var/lib/dpkg/status"
BOOT_TIMEOUT = 120.0  # a bound for a busy machine; a boot takes 1-3 s here
HALT_WAIT = 10.0
CGROUP_WAIT = 5.0
NOT_YET = ("", "offline")  # what `systemctl is-system-running` says before PID 1 is up
# The host's own files, copied over these paths of its root before boot (replacing the
# machine's: its /etc/ssh keys and its enabled units stay out of the host).
ROOT_FILES = (
    *HOST_FILES,
    ("etc-ssh", "/etc/ssh"),
    ("machine-id", "/etc/machine-id"),
    ("sd-units", "/etc/systemd/system"),
    ("root-home", "/root"),  # a fresh server's, not the machine's dotfiles
)


def check_support() -> None:
    """What a systemd lab needs on this machine, each missing piece named."""
    if not SYSTEMD.is_file():
        raise LabError(f"--init systemd needs systemd ({SYSTEMD}): apt-get install systemd")
    if not Path(PYTHON).is_file():
        raise LabError(f"--init systemd needs {PYTHON} (the masters' and nodes' stand-ins)")
    for tool, pkg in (("dpkg-scanpackages", "dpkg-dev"), ("apt-get", "apt")):
        if not shutil.which(tool):
            raise LabError(f"--init systemd needs {tool}: apt-get install {pkg}")
    if cgroup2_root() is None:
        raise LabError("--init systemd needs a cgroup2 (unified) hierarchy mounted")
    try:
        fs = Path("/proc/filesystems").read_text().split()
    except OSError:
        fs = []
    if "overlay" not in fs:
        raise LabError("--init systemd needs overlayfs (modprobe overlay)")


def cgroup2_root() -> Path | None:
    for m in netns.mounts():
        if m.fstype == "cgroup2":
            return Path(m.target)
    return None


def host_cgroup(netns_name: str) -> Path:
    root = cgroup2_root()
    if root is None:
        raise LabError("no cgroup2 hierarchy is mounted")
    return root / CGROUP_PARENT / netns_name


# --- the package source -------------------------------------------------------------


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One lab at a time fills the package cache or copies it into its base layer."""
    d = Path(DEBS_DIR)
    d.mkdir(parents=True, exist_ok=True)
    with open(d.parent / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _purge_list() -> list[tuple[str, str]]:
    """What purging haproxy and keepalived removes here, remembered until dpkg's database
    changes (apt's simulation takes seconds)."""
    st = os.stat(DPKG_STATUS)
    key = f"{st.st_mtime_ns}:{st.st_size}"
    memo = Path(DEBS_DIR).parent / "purge.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(memo.read_text())
        if data["dpkg_status"] == key:
            return [(str(p), str(v)) for p, v in data["purge"]]
    # -s: a simulation; the empty cache paths keep apt from rewriting the machine's own
    sim = netns.run(
        ["apt-get", "-s", "-q", "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
         "purge", "--autoremove", *FRESH_PACKAGES],
        check=False,
        timeout=120,
    )  # fmt: skip
    wanted = parse_purged(sim.stdout)
    if sim.returncode == 0 and wanted:
        atomic_write(memo, json.dumps({"dpkg_status": key, "purge": wanted}) + "\n", 0o644)
    return wanted


def _in_cache(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return netns.run(["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", DEBS_DIR, *argv],
                     check=False, timeout=timeout)  # fmt: skip


def fresh_packages() -> list[str]:
    """Fill the cache with the .deb files of what a purge of haproxy and keepalived
    removes from this machine (the exact installed versions), index them, and return the
    package names, in the order the purge takes them."""
    wanted = _purge_list()
    names = {p for p, _ in wanted}
    absent = [p for p in FRESH_PACKAGES if p not in names]
    if absent:
        raise LabError(
            f"--init systemd: {', '.join(absent)} not installed on this machine; the lab "
            "serves the machine's own versions to its hosts (apt-get install haproxy keepalived)"
        )
    d = Path(DEBS_DIR)
    missing = missing_debs(wanted, os.listdir(d))
    if missing:
        cp = _in_cache(["apt-get", "download", "-q", *missing], timeout=300)
        still = missing_debs(wanted, os.listdir(d))
        if still:
            last = (cp.stderr or cp.stdout).strip().splitlines()
            raise LabError(
                f"--init systemd: could not download {', '.join(still)} into {DEBS_DIR} "
                f"({last[-1] if last else 'apt-get download failed'}); it needs the "
                "Debian mirror once, or copy those .deb files there by hand"
            )
    # Other versions (from before an upgrade of the machine) would be indexed too.
    debs = {f for f in os.listdir(d) if f.endswith(".deb")}
    stale = debs - matching_debs(wanted, debs)
    for f in stale:
        (d / f).unlink()
    if missing or stale or not (d / "Packages").is_file():
        index = "dpkg-scanpackages --multiversion . > Packages.new && mv Packages.new Packages"
        cp = _in_cache(["sh", "-c", index], timeout=120)
        if cp.returncode != 0:
            raise LabError(f"dpkg-scanpackages in {DEBS_DIR} failed: {cp.stderr.strip()[-200:]}")
    return [p for p, _ in wanted]


def build_base(lab: Lab, packages: list[str]) -> Path:
    """The lab's base layer on a tmpfs under its state dir: the machine's root with
    `packages` purged and apt reading only the local source. Built once per lab, shared
    by its systemd hosts as a read-only lower layer."""
    base = lab.state_dir / "base"
    base.mkdir(mode=0o755)
    netns.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", str(base)])
    argv = [
        "unshare", "--mount", "--pid", "--fork", "--net", "--uts", "--ipc",
        "--propagation", "private", "--",
        "sh", "-euc", BASE_SETUP, "sh", str(base), DEBS_DIR, BASE_CHROOT, *packages,
    ]  # fmt: skip
    cp = netns.run(argv, check=False, timeout=300)
    if cp.returncode != 0:
        last = (cp.stderr or cp.stdout).strip().splitlines()
        why = last[-1] if last else f"exit {cp.returncode}"
        raise LabError(f"lab {lab.name}: building the base layer failed: {why}")
    return base


# --- one host -----------------------------------------------------------------------


def _machine_units() -> list[str]:
    names: list[str] = []
    for d in UNIT_DIRS:
        with contextlib.suppress(OSError):
            names += [n for n in os.listdir(d) if n.endswith(UNIT_SUFFIXES)]
    return names


def prepare(
    lab: Lab, h: LabHost, masks: list[str], standins: Mapping[str, str] | None = None
) -> list[str]:
    """Files the host's root gets on top of the base layer (beside those of
    hostfiles.prepare_host_files); returns the boot script's arguments: (file, path in
    the root) pairs to copy, then `--` and the pairs to bind.

    `standins`: {unit file name: text} of the stand-in services a master or node runs,
    written into /etc/systemd/system and enabled."""
    d = lab.host_dir(h.name)
    units = d / "sd-units"
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for u in masks:
        (units / u).symlink_to("/dev/null")
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
    (units / "sshd.service").symlink_to("/lib/systemd/system/ssh.service")
    binds: list[tuple[str, str]] = []
    extra: tuple[tuple[str, str], ...] = ()
    if standins:
        for unit, text in standins.items():
            atomic_write(units / unit, text, 0o644)
            (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")
        opt = d / "opt-halb-lab"
        opt.mkdir(mode=0o755)
        shutil.copyfile(Path(fakeapi.__file__), opt / Path(STANDIN).name)
        extra = (("opt-halb-lab", STANDIN_DIR),)
        binds.append((CONTROL_DIR, CONTROL))
    (d / "machine-id").write_text(secrets.token_hex(16) + "\n")
    (d / "machine-id").chmod(0o444)
    (d / "console.log").touch(mode=0o600)
    home = d / "root-home"
    home.mkdir(mode=0o700)
    for f in (".bashrc", ".profile"):
        if Path("/etc/skel", f).is_file():
            shutil.copy2(Path("/etc/skel", f), home / f)
    pairs = ROOT_FILES + extra + (SUDO_DIRS if h.sudo_user else ())
    return [x for pair in pairs for x in pair] + ["--"] + [x for pair in binds for x in pair]


def boot(lab: Lab, h: LabHost, base: Path, files: list[str]) -> None:
    """Start systemd as PID 1 of the host, in its own cgroup and namespaces."""
    cg = host_cgroup(h.netns)
    try:
        cg.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(
            f"lab {lab.name}: cannot make the cgroup {cg} for {h.name} ({e.strerror}); "
            "--init systemd needs a writable cgroup2 hierarchy"
        ) from None
    log = lab.host_dir(h.name) / "lab-logs" / "boot.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        *nsenter_argv(h.netns),
        "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--cgroup",
        "--propagation", "private", "--",
        "sh", "-euc", boot_script(), "sh", h.name, str(base), str(lab.host_dir(h.name)), *files,
    ]  # fmt: skip
    netns.spawn_daemon(["sh", "-c", JOIN_CGROUP, "sh", str(cg)], argv, log)


def wait_booted(lab: Lab, h: LabHost, timeout: float = BOOT_TIMEOUT) -> None:
    """Until systemd in `h` says the system is running (every wanted unit started)."""
    deadline = time.monotonic() + timeout
    log = lab.host_dir(h.name) / "lab-logs" / "boot.log"
    while (pid := netns.init_pid(h.netns)) is None:
        if time.monotonic() > deadline:
            raise LabError(f"lab {lab.name}: systemd did not start on {h.name} (see {log})")
        time.sleep(0.1)
    state = ""
    while state in NOT_YET:
        # Until PID 1 has made /run/systemd/system and listens on its socket, systemctl
        # says "offline" or nothing; then --wait blocks while it starts the units.
        left = deadline - time.monotonic()
        if left <= 0:
            break
        cp = netns.run(
            [*netns.init_enter_argv(pid), "systemctl", "is-system-running", "--wait"],
            check=False,
            timeout=left + 5,
        )
        state = cp.stdout.strip()
        if state in NOT_YET:
            time.sleep(0.1)
    if state != "running":
        failed = netns.run(
            [*netns.init_enter_argv(pid), "systemctl", "--failed", "--plain", "--no-legend"],
            check=False,
        ).stdout.split()
        units = [u for u in failed if "." in u]
        raise LabError(
            f"lab {lab.name}: systemd on {h.name} is {state or 'not answering'}"
            + (f" (failed: {', '.join(units)})" if units else "")
        )


def halt(pids: Iterable[int], wait: float = HALT_WAIT) -> list[int]:
    """SIGRTMIN+3 to each host's systemd (a clean halt of everything it runs), then wait
    up to `wait` seconds. Returns the pids still alive."""
    pids = list(pids)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGRTMIN + 3)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(netns.pid_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if netns.pid_alive(p)]


def remove_cgroups(lab_name: str, wait: float = CGROUP_WAIT) -> int:
    """Remove the cgroups of the lab's systemd hosts (deepest first); returns how many
    host cgroups went away. A cgroup stays busy until the machine's init has reaped the
    exited `unshare` parent in it, so this retries for up to `wait` seconds."""
    root = cgroup2_root()
    if root is None:
        return 0
    parent = root / CGROUP_PARENT
    count = 0
    deadline = time.monotonic() + wait
    while True:
        left = []
        with contextlib.suppress(OSError):
            left = list(parent.glob(f"halb-{lab_name}-*"))
        for host in left:
            for d, _, _ in sorted(os.walk(host), key=lambda t: t[0].count("/"), reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
            count += not host.exists()
        if all(not h.exists() for h in left) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        parent.rmdir()  # only when no other lab has hosts in it
    return count


def masks() -> list[str]:
    """The machine's units that a systemd lab host masks."""
    return units_to_mask(_machine_units())
