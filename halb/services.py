"""Start, reload and inspect HAProxy and keepalived on a host, through its transport.

Two managers with one interface: systemd (real hosts) and a plain pid-file supervisor
(hosts without systemd, such as the netns lab). HAProxy always runs master-worker and is
reloaded (validate, then USR2 to the master), never restarted.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from halb.daemons import CONFIG_OF as CONFIG_OF
from halb.daemons import SERVICES as SERVICES
from halb.daemons import ServiceName as ServiceName
from halb.errors import DeployError, InputError
from halb.facts.pids import PIDS_SCRIPT, parse_pids, pids_argv
from halb.facts.units import UnitState, parse_show, parse_states, show_argv
from halb.paths import (
    HAPROXY_CFG,
    HAPROXY_EXIT_FILE,
    HAPROXY_PIDFILE,
    KEEPALIVED_CHECKERS_PIDFILE,
    KEEPALIVED_CONF,
    KEEPALIVED_PIDFILE,
    KEEPALIVED_VRRP_PIDFILE,
    LOG_DIR,
    REDIRECT_SCRIPT,
    REDIRECT_TABLE,
)
from halb.transport import Transport, quote, sh


def validate_argv(name: ServiceName, path: str) -> list[str]:
    """The target-side check of a config file; any non-zero exit is a failure."""
    if name == "haproxy":
        return ["haproxy", "-c", "-f", path]  # no -q: it hides the error messages too
    return ["keepalived", "-t", "-f", path]


def tool_message(text: str, limit: int = 5) -> str:
    """The lines of a tool's output that say what went wrong (HAProxy: the ALERTs)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    alerts = [ln for ln in lines if "[ALERT]" in ln or "error" in ln.lower()]
    picked = (alerts or lines)[-limit:]
    return " | ".join(picked) or "no output"


@dataclass(frozen=True)
class SupervisedSpec:
    start: tuple[str, ...]
    pidfile: str
    comm: str  # /proc/PID/comm of the main process, guards against a stale pid file
    reload_signal: str
    # every pid file the daemon writes (the main one first): one naming a dead process
    # is removed before a start, as keepalived refuses to start while one names a live pid
    pidfiles: tuple[str, ...] = ()
    # runs in the foreground under a watcher shell that writes 1 here when it exits
    exit_file: str = ""


SUPERVISED: dict[ServiceName, SupervisedSpec] = {
    "haproxy": SupervisedSpec(
        ("haproxy", "-W", "-db", "-f", HAPROXY_CFG, "-p", HAPROXY_PIDFILE),
        HAPROXY_PIDFILE,
        "haproxy",
        "USR2",
        (HAPROXY_PIDFILE,),
        HAPROXY_EXIT_FILE,
    ),
    "keepalived": SupervisedSpec(
        (
            "keepalived",
            "-f",
            KEEPALIVED_CONF,
            "-p",
            KEEPALIVED_PIDFILE,
            "-r",
            KEEPALIVED_VRRP_PIDFILE,
            "-c",
            KEEPALIVED_CHECKERS_PIDFILE,
        ),
        KEEPALIVED_PIDFILE,
        "keepalived",
        "HUP",
        (KEEPALIVED_PIDFILE, KEEPALIVED_VRRP_PIDFILE, KEEPALIVED_CHECKERS_PIDFILE),
    ),
}

# How long a service manager's query, `enable` or `disable` may take before the host
# counts as hung: on emulated VMs (QEMU's TCG) on busy shared cores `systemctl show` took
# over 30 s and `systemctl enable keepalived` (Debian's update-rc.d, perl) over 60 s;
# `disable` runs the same update-rc.d.
SLOW_COMMAND_TIMEOUT = 300.0


class ServiceManager(ABC):
    kind: str

    def __init__(self, transport: Transport) -> None:
        self.t = transport

    @abstractmethod
    def pids_argv(self, names: Sequence[ServiceName]) -> list[str]:
        """A command printing one word per name: its main pid, or `-` when not running.
        Deploy runs it with its other facts, and as the last step of a change."""

    def parse_pids(self, text: str, names: Sequence[ServiceName]) -> dict[ServiceName, int | None]:
        """The answer to `pids_argv`; an unreadable answer counts as not running."""
        found = parse_pids(text, len(names))
        return dict(zip(names, found or [None] * len(names), strict=True))

    def unit_states(
        self, text: str, names: Sequence[ServiceName]
    ) -> dict[ServiceName, UnitState] | None:
        """The fuller state of each service from the answer to `pids_argv`, where the
        manager keeps one (systemd); None: only pids are known."""
        return None

    def main_pid(self, name: ServiceName) -> int | None:
        """Pid of the running main process (HAProxy: the master), None when not running."""
        return self._run_pids(self.pids_argv((name,)), (name,))[name]

    def main_pids(self) -> dict[ServiceName, int | None]:
        """Both services' main pids, in one round trip."""
        return self._run_pids(self.pids_argv(SERVICES), SERVICES)

    def _run_pids(
        self, argv: list[str], names: Sequence[ServiceName]
    ) -> dict[ServiceName, int | None]:
        res = self.t.run(argv, timeout=SLOW_COMMAND_TIMEOUT)
        return self.parse_pids(res.out if res.ok else "", names)

    @abstractmethod
    def start(self, name: ServiceName) -> None: ...

    @abstractmethod
    def stop(self, name: ServiceName) -> None: ...

    def restart(self, name: ServiceName) -> None:
        """Only for a daemon that serves nothing of ours yet (just installed)."""
        self.stop(name)
        self.start(name)

    @abstractmethod
    def stop_now_argv(self, name: ServiceName) -> list[str]:
        """A command that begins a graceful stop and does not wait for its end (the
        drill's graceful fault: keepalived sends its priority-0 advert as it goes)."""

    def enable(self, name: ServiceName) -> None:  # noqa: B027 - systemd only
        """Start at boot where the manager supports it."""

    def disable(self, name: ServiceName) -> None:  # noqa: B027 - systemd only
        """No start at boot (undeploy), where the manager supports it."""

    # -- shared ----------------------------------------------------------------------
    def children(self, pid: int) -> set[int]:
        res = self.t.run(["cat", f"/proc/{pid}/task/{pid}/children"], timeout=15)
        return {int(p) for p in res.out.split() if p.isdigit()} if res.ok else set()

    # -- reload in one round trip ------------------------------------------------------
    # The shell that sets $pid (digits, or empty when not running) from $a and $b, and the
    # one that sends the reload; both fixed text, the paths and names come as arguments.
    _PID_SH = ""

    def _ids(self, name: ServiceName) -> tuple[str, str]:
        """$a and $b of the reload script."""
        raise NotImplementedError(f"{type(self).__name__}: reload")

    def _signal_sh(self, name: ServiceName) -> str:
        raise NotImplementedError(f"{type(self).__name__}: reload")

    def reload_argv(self, name: ServiceName, wait: float = 10.0) -> list[str]:
        """One command that validates the installed config, reads the main pid, reloads,
        and confirms the reload took (HAProxy: a new worker under the same master, within
        `wait` seconds). Its exit status and output go to `reload_error`."""
        tries = max(1, int(wait / _POLL)) if name == "haproxy" else 0
        script = (
            _RELOAD.replace("@PID@", self._PID_SH)
            .replace("@SIGNAL@", self._signal_sh(name))
            .replace("@POLL@", str(_POLL))
        )
        a, b = self._ids(name)
        return sh(script, a, b, str(tries), *validate_argv(name, CONFIG_OF[name]))

    def reload_error(
        self, name: ServiceName, rc: int, out: str, wait: float = 10.0
    ) -> DeployError | None:
        """What went wrong in `reload_argv`, as the deploy reports it; None: reloaded."""
        host = self.t.name
        if rc == 0:
            return None
        if rc == _NOT_VALID:
            return DeployError(
                f"{host}: {CONFIG_OF[name]} failed validation, not reloading {name}: "
                f"{tool_message(out)}"
            )
        if rc == _NOT_RUNNING:
            return DeployError(f"{host}: {name} is not running, cannot reload")
        if rc == _SIGNAL_FAILED:
            return DeployError(f"{host}: reloading {name} failed: {tool_message(out)}")
        if rc == _EXITED:
            what = "exited during reload" if name == "haproxy" else "exited on reload"
            return DeployError(f"{host}: {name} {what}")
        if rc == _NO_NEW_WORKER and name == "haproxy":
            return DeployError(
                f"{host}: haproxy reload did not start a new worker within "
                f"{wait:g}s (the old workers keep serving); see the haproxy log"
            )
        return DeployError(f"{host}: reloading {name} failed (exit {rc}): {tool_message(out)}")

    def reload(self, name: ServiceName, *, wait: float = 10.0) -> None:
        """Validate the installed config, reload, and confirm the reload took.

        HAProxy: a new worker must appear under the same master (a failed reload leaves
        the master in wait mode with only the old workers, still serving).
        """
        res = self.t.run(self.reload_argv(name, wait), timeout=wait + 60)
        err = self.reload_error(name, res.rc, res.out + res.err, wait)
        if err is not None:
            raise err

    def daemon_reload_argv(self) -> list[str] | None:
        """The command that re-reads unit files, where the manager has them."""
        return None


# How often the reload script looks for the new HAProxy worker: it appears some tens of
# ms after the signal, and a 0.2 s poll made most of a 2-host change's wait.
_POLL = 0.05

# Exit statuses of the reload script.
_NO_NEW_WORKER, _EXITED, _NOT_VALID, _NOT_RUNNING, _SIGNAL_FAILED = 1, 2, 3, 4, 5

# $1 $2: what the manager's pid and signal parts use ($a $b); $3: tries of _POLL s for a new
# HAProxy worker (0: keepalived, which must only still run); then the validation argv.
_RELOAD = r"""
a=$1 b=$2 tries=$3; shift 3
out=$("$@" 2>&1) || { printf '%s\n' "$out"; exit 3; }
@PID@
[ -n "$pid" ] || exit 4
master=$pid old=
if [ "$tries" -gt 0 ]; then read -r old < /proc/"$master"/task/"$master"/children || :; fi
out=$(@SIGNAL@ 2>&1) || { printf '%s\n' "$out"; exit 5; }
if [ "$tries" -eq 0 ]; then
  @PID@
  [ -n "$pid" ] || exit 2
  exit 0
fi
old=" $old "; i=0
while [ "$i" -lt "$tries" ]; do
  kill -0 "$master" 2>/dev/null || exit 2
  kids=; read -r kids < /proc/"$master"/task/"$master"/children || :
  for c in $kids; do
    case "$old" in *" $c "*) ;; *) echo "$c"; exit 0 ;; esac
  done
  sleep @POLL@; i=$((i + 1))
done
exit 1
"""


# For each unit: MainPID when it is active (0 means none), else "-".
class Systemd(ServiceManager):
    kind = "systemd"

    def pids_argv(self, names: Sequence[ServiceName]) -> list[str]:
        return show_argv(names)  # every unit's state in one `systemctl show`

    def parse_pids(self, text: str, names: Sequence[ServiceName]) -> dict[ServiceName, int | None]:
        found = parse_show(text, names)
        return {n: (found or {}).get(n) for n in names}

    def unit_states(
        self, text: str, names: Sequence[ServiceName]
    ) -> dict[ServiceName, UnitState] | None:
        found = parse_states(text, names)
        return None if found is None else {n: found[n] for n in names}

    def start(self, name: ServiceName) -> None:
        self.t.run(["systemctl", "start", name], timeout=90, check=True)

    def stop(self, name: ServiceName) -> None:
        self.t.run(["systemctl", "stop", name], timeout=90, check=True)

    def restart(self, name: ServiceName) -> None:
        self.t.run(["systemctl", "restart", name], timeout=90, check=True)

    def stop_now_argv(self, name: ServiceName) -> list[str]:
        # through systemd, so that it knows the unit was stopped (a signal would be a crash)
        return ["systemctl", "stop", "--no-block", name]

    _PID_SH = (
        "pid= act=; for kv in $(systemctl show --property=ActiveState --property=MainPID "
        '-- "$a"); do case $kv in MainPID=*) pid=${kv#MainPID=} ;; '
        "ActiveState=active | ActiveState=reloading) act=1 ;; esac; done; "
        'if [ -z "$act" ] || [ "$pid" = 0 ]; then pid=; fi'
    )

    def _ids(self, name: ServiceName) -> tuple[str, str]:
        return name, ""

    def _signal_sh(self, name: ServiceName) -> str:
        return 'systemctl reload -- "$a"'

    def daemon_reload_argv(self) -> list[str] | None:
        return ["systemctl", "daemon-reload"]

    def enable(self, name: ServiceName) -> None:
        argv = ["systemctl", "enable", "--quiet", name]
        self.t.run(argv, timeout=SLOW_COMMAND_TIMEOUT, check=True)

    def disable(self, name: ServiceName) -> None:
        argv = ["systemctl", "disable", "--quiet", name]
        self.t.run(argv, timeout=SLOW_COMMAND_TIMEOUT, check=True)


# Start a daemon detached from the session; its own start-up messages are kept and shown.
# The file limit is raised the way a systemd unit would; HAProxy sizes maxconn from it.
# Pid files that name no live process of the daemon go first: a killed daemon stays a
# zombie until its parent reaps it (here up to seconds), and keepalived will not start
# while one of its pid files names a pid that kill -0 accepts.
# With an exit file ($4), the daemon runs in the foreground under a watcher shell, its
# parent, which sees the exit at once, writes 1 there and takes the VIPs out of halb's
# redirect where there is one (as systemd's ExecStopPost does); the script waits until the
# daemon's pid file names it, or it has exited, and shows its messages then.
# Where halb redirects the public ports (co-located LB hosts), the watcher empties the
# redirect's set itself, one exec sooner than redirect.sh: each millisecond of the gap
# between HAProxy's death and the flush is a connection refused on the VIP.
_FLUSH_SET = f"[ -x {REDIRECT_SCRIPT} ] && nft flush set ip {REDIRECT_TABLE} healthy 2>/dev/null"
_EXIT_HOOK = f"[ -x {REDIRECT_SCRIPT} ] && exec {REDIRECT_SCRIPT} exited"
# live PIDFILE COMM: the pid when it names a live (not zombie) process COMM, else "-"
_START = (
    (
        f'live() {{ sh -c {quote([PIDS_SCRIPT])} sh "$1" "$2"; }}\n'
        + r"""
ulimit -Hn 1048576 2>/dev/null; ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
mkdir -p "$1" && log="$1/start-$2.log" && comm=$3 exitfile=$4 pidfiles=$5 && shift 5 || exit 1
for f in $pidfiles; do
  [ "$(live "$f" "$comm")" = - ] && rm -f "$f"
done
if [ -z "$exitfile" ]; then
  "$@" </dev/null >"$log" 2>&1; rc=$?; cat "$log"; exit $rc
fi
echo 0 >"$exitfile" || exit 1
watch='"$@" & wait $!; @FLUSH_SET@; echo 1 >"$0"; @EXIT_HOOK@'
setsid sh -c "$watch" "$exitfile" "$@" </dev/null >"$log" 2>&1 &
pidfile=${pidfiles%% *}; i=0
while [ "$i" -lt 100 ]; do
  [ "$(cat "$exitfile")" = 1 ] && { cat "$log"; exit 1; }
  [ "$(live "$pidfile" "$comm")" != - ] && exit 0
  sleep 0.1; i=$((i + 1))
done
cat "$log"; exit 1
"""
    )
    .replace("@FLUSH_SET@", _FLUSH_SET)
    .replace("@EXIT_HOOK@", _EXIT_HOOK)
)


def start_argv(name: ServiceName) -> list[str]:
    """The supervisor's start of `name`, as one command (deploy and the export use it)."""
    spec = SUPERVISED[name]
    pidfiles = " ".join(spec.pidfiles)
    return sh(_START, LOG_DIR, name, spec.comm, spec.exit_file, pidfiles, *spec.start)


class Supervisor(ServiceManager):
    """Daemons started directly with pid files (no init system)."""

    kind = "supervisor"

    def start(self, name: ServiceName, *, wait: float = 10.0) -> None:
        res = self.t.run(start_argv(name), timeout=60)
        if not res.ok:
            raise DeployError(f"{self.t.name}: {name} failed to start: {tool_message(res.out)}")
        deadline = time.monotonic() + wait
        while self.main_pid(name) is None:
            if time.monotonic() > deadline:
                raise DeployError(f"{self.t.name}: {name} did not come up within {wait:g}s")
            time.sleep(0.2)

    def stop(self, name: ServiceName, *, wait: float = 10.0) -> None:
        pid = self.main_pid(name)
        if pid is None:
            return
        self.t.run(["kill", "-TERM", str(pid)], timeout=15)
        deadline = time.monotonic() + wait
        while self.main_pid(name) is not None:
            if time.monotonic() > deadline:
                raise DeployError(f"{self.t.name}: {name} (pid {pid}) did not stop")
            time.sleep(0.2)

    def stop_now_argv(self, name: ServiceName) -> list[str]:
        pid = self.main_pid(name)
        if pid is None:
            raise DeployError(f"{self.t.name}: {name} is not running")
        return ["kill", "-TERM", str(pid)]

    def pids_argv(self, names: Sequence[ServiceName]) -> list[str]:
        return pids_argv([(SUPERVISED[n].pidfile, SUPERVISED[n].comm) for n in names])

    _PID_SH = f'pid=$(sh -c {quote([PIDS_SCRIPT])} sh "$a" "$b"); [ "$pid" != - ] || pid='

    def _ids(self, name: ServiceName) -> tuple[str, str]:
        return SUPERVISED[name].pidfile, SUPERVISED[name].comm

    def _signal_sh(self, name: ServiceName) -> str:
        return f'kill -{SUPERVISED[name].reload_signal} "$master"'


MANAGERS: dict[str, type[ServiceManager]] = {"systemd": Systemd, "supervisor": Supervisor}


def manager(kind: str, transport: Transport) -> ServiceManager:
    cls = MANAGERS.get(kind)
    if cls is None:
        valid = ", ".join(sorted(MANAGERS))
        raise InputError(
            f"host {transport.name}: unknown halb_service_manager {kind!r} (valid: {valid})"
        )
    return cls(transport)
