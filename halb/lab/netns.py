"""Effects of the lab on this machine: network namespaces, links, mounts, processes.

Everything here runs `ip`, `mount`, `unshare`, `nsenter` or reads /proc; what to create
is decided by topology.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from halb.errors import HalbError, InputError
from halb.transport.netns import nsenter_argv

DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(HalbError):
    """The lab could not be built or entered (exit 1)."""


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    try:
        cp = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{argv[0]}: {e}") from None
    if check and cp.returncode != 0:
        msg = (cp.stderr or cp.stdout).strip().splitlines()
        raise LabError(f"`{' '.join(argv[:6])}` failed: {msg[-1] if msg else cp.returncode}")
    return cp


def require_root() -> None:
    if os.geteuid() != 0:
        raise InputError("halb lab needs root (network namespaces, mounts); run it with sudo")


def ip_netns_available() -> bool:
    try:
        return run(["ip", "netns", "list"], check=False, timeout=10).returncode == 0
    except LabError:
        return False


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ip_batch(commands: Iterable[str], netns: str | None = None) -> None:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    run(argv, input="\n".join(commands) + "\n")


def netns_pids(netns: str) -> list[int]:
    cp = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in cp.stdout.split() if p.isdigit()]


def delete_netns(netns: str) -> None:
    run(["ip", "netns", "del", netns], check=False)


# a route's type word before its destination in `ip route show table all`
_ROUTE_TYPES = {"local", "anycast", "multicast", "unicast", "broadcast", "unreachable",
                "prohibit", "blackhole", "throw", "nat"}  # fmt: skip


def root_networks(family: int) -> list[str]:
    """Every address (ADDRESS/PREFIX) and route destination of one family (4 or 6) in the
    namespace halb itself runs in."""
    flag = f"-{family}"
    out = run(["ip", "-o", flag, "addr", "show"]).stdout
    nets = [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]
    # a kernel without IPv6 refuses `ip -6 route`: no IPv6 routes then
    routes = run(["ip", flag, "route", "show", "table", "all"], check=family == 4).stdout
    for line in routes.splitlines():
        if line[:1].isspace():  # a multipath route's "nexthop ..." line
            continue
        words = line.split()
        if words and words[0] in _ROUTE_TYPES:
            words = words[1:]
        if words and words[0] != "default":
            nets.append(words[0])
    return nets


def root_addresses() -> list[str]:
    """Every IPv4 address and route destination in halb's own namespace, without prefix."""
    return [n.split("/")[0] for n in root_networks(4)]


def addresses_in(netns: str, iface: str = "eth0") -> list[tuple[str, int]]:
    """(address, prefix length) of the IPv4 addresses on `iface` inside `netns`."""
    cp = run(["ip", "-n", netns, "-o", "-4", "addr", "show", "dev", iface], check=False)
    out = []
    for line in cp.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            a, _, plen = parts[parts.index("inet") + 1].partition("/")
            out.append((a, int(plen or 32)))
    return out


def listening_tcp(netns: str) -> set[tuple[str, int]]:
    cp = run([*nsenter_argv(netns), "ss", "-Hltn"], check=False)
    out: set[tuple[str, int]] = set()
    for line in cp.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            addr, _, port = parts[3].rpartition(":")
            if port.isdigit():
                out.add((addr.strip("[]"), int(port)))
    return out


# --- mounts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    target: str
    fstype: str


def _unescape(s: str) -> str:
    return (
        s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
    )


def mounts() -> list[Mount]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        out.append(Mount(_unescape(fields[4]), rfields[0] if rfields else ""))
    return out


def is_mountpoint(path: Path) -> bool:
    p = str(path)
    return any(m.target == p for m in mounts())


def private_bind(path: Path) -> None:
    """Make `path` a private mount so namespace files can be bound inside it."""
    if not is_mountpoint(path):
        run(["mount", "--bind", str(path), str(path)])
    run(["mount", "--make-private", str(path)])


def umount(path: str) -> None:
    if run(["umount", path], check=False).returncode != 0:
        run(["umount", "-l", path], check=False)


def umount_all(targets: Iterable[str]) -> None:
    """Unmount deepest first; a path mounted several times is unmounted until it is not."""
    for t in sorted(set(targets), key=lambda s: (s.count("/"), s), reverse=True):
        for _ in range(8):
            if not any(m.target == t for m in mounts()):
                break
            umount(t)


# --- entering hosts and starting daemons ----------------------------------------------


def new_host_namespaces(netns: str, mnt: Path, uts: Path, script: str, args: Sequence[str]) -> None:
    """Create the host's persistent mount and UTS namespaces and run `script` inside once.

    The namespaces live on as long as `mnt`/`uts` stay bound (until `lab down`).
    """
    mnt.touch()
    uts.touch()
    run(
        [
            *nsenter_argv(netns),
            "unshare",
            f"--mount={mnt}",
            f"--uts={uts}",
            "--propagation",
            "private",
            "--",
            "sh",
            "-euc",
            script,
            "sh",
            *args,
        ]
    )


def spawn_daemon(
    enter: Sequence[str], argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> None:
    """Start `argv` in its own session, detached: it outlives us and holds none of our pipes."""
    daemon_env = {"PATH": DAEMON_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    daemon_env.update(env or {})
    with open(log, "ab", buffering=0) as f:
        cp = subprocess.run(
            ["setsid", "-f", *enter, *argv],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd="/",
            env=daemon_env,
            close_fds=True,
            timeout=30,
            check=False,
        )
    if cp.returncode != 0:
        raise LabError(f"could not start {argv[0]} (see {log})")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_all(pids: Iterable[int], grace: float = 3.0) -> list[int]:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the pids still alive."""
    pids = [p for p in set(pids) if p != os.getpid()]
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if pid_alive(p):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def ns_inode(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def ns_pid(pid: int) -> int | None:
    """The pid of `pid` inside its own (innermost) pid namespace."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def init_pid(netns: str) -> int | None:
    """The systemd that is PID 1 of a lab host living in `netns`, if one runs."""
    for pid in netns_pids(netns):
        argv = cmdline(pid)
        if argv and argv[0].endswith("/systemd") and ns_pid(pid) == 1:
            return pid
    return None


def init_enter_argv(pid: int) -> list[str]:
    """`nsenter ... --` into every namespace and the root of a systemd host (-r -w: else
    the command would see the machine's root instead of the host's)."""
    return ["nsenter", "-t", str(pid), "-a", "-r", "-w", "--"]
