"""Inject and restore each fault on real hosts, through their transports.

Service faults (graceful, kill, haproxy) act on the holder's keepalived or HAProxy and
are restored by starting the service again. Faults that may cut the drill off from the
host (link) or that change host state outside the services (partition, apiserver) are
run by a small script on the host itself: it arms a detached timer that restores the
fault after `hold` seconds whatever happens to the drill, then injects. The drill
restores early where it can and disarms the timer (by its pid) when it does.
"""

from __future__ import annotations

from halb.daemons import ServiceName
from halb.drill.fault_kinds import STATE_DIR as STATE_DIR
from halb.drill.fault_kinds import ServiceFault
from halb.errors import HalbError, InputError
from halb.paths import LAB_CONTROL_DIR
from halb.services import ServiceManager
from halb.transport import Transport, sh

# $1 id, $2 hold, $3 fault script, $4 state folder, then the script's arguments. Arms
# the restore timer first, then injects detached (so a fault that cuts this very link
# still happens and is timed). The times written ($d/$id.t, $d/$id.r) are taken when the
# injection or the restore has been done, e.g. once the drop rule is in place.
_ARM = """
id=$1 hold=$2 script=$3 d=$4; shift 4
mkdir -p "$d" && chmod 700 "$d" || exit 1
rm -f "$d/$id.t" "$d/$id.r"
setsid sh -c 'sleep "$1"; f=$2; shift 2; sh -c "$@"; date +%s.%N > "$f"' timer "$hold" \\
  "$d/$id.r" "$script" fault restore "$@" </dev/null >/dev/null 2>&1 &
echo $! > "$d/$id.timer"
setsid sh -c 'f=$1; shift; sleep 0.05; sh -c "$@"; date +%s.%N > "$f"' inject "$d/$id.t" \\
  "$script" fault inject "$@" </dev/null >"$d/$id.log" 2>&1 &
"""
# Disarm the timer and restore now (a no-op when the timer already did); prints
# "t INJECTED r RESTORED" as the host's clock saw them.
_DISARM = """
id=$1 script=$2 d=$3; shift 3
pid=$(cat "$d/$id.timer" 2>/dev/null) && [ -n "$pid" ] && kill "$pid" 2>/dev/null
sh -c "$script" fault restore "$@"; rc=$?
[ -s "$d/$id.r" ] || date +%s.%N > "$d/$id.r"
echo "t $(cat "$d/$id.t" 2>/dev/null) r $(cat "$d/$id.r" 2>/dev/null)"
rm -f "$d/$id.timer" "$d/$id.log" "$d/$id.t" "$d/$id.r"
exit $rc
"""
_SIGNAL = 'date +%s.%N; kill -"$1" "$2"; shift 2; [ $# -gt 0 ] && kill -KILL "$@"; true'
_HAS_LAB_API = f"[ -d {LAB_CONTROL_DIR} ]"


def parse_time(text: str) -> float | None:
    for word in text.split():
        try:
            return float(word)
        except ValueError:
            continue
    return None


def arm(
    t: Transport, script: str, fid: str, hold: float, *args: str, state_dir: str = STATE_DIR
) -> None:
    """Host side: arm the restore timer and inject (detached)."""
    t.run(sh(_ARM, fid, f"{hold:.3f}", script, state_dir, *args), timeout=15, check=True)


def disarm(
    t: Transport, script: str, fid: str, *args: str, state_dir: str = STATE_DIR, timeout: float = 15
) -> tuple[float | None, float | None]:
    """Host side: stop the timer, restore now; the host's (injection, restore) times."""
    res = t.run(sh(_DISARM, fid, script, state_dir, *args), timeout=timeout, check=True)
    return parse_marked(res.out, "t"), parse_marked(res.out, "r")


def parse_marked(text: str, mark: str) -> float | None:
    """The number after `mark` in "t 1.5 r 2.5"."""
    words = text.split()
    for i, w in enumerate(words[:-1]):
        if w == mark:
            try:
                return float(words[i + 1])
            except ValueError:
                return None
    return None


def require_lab_apiserver(masters: list[Transport]) -> None:
    """The apiserver fault drives the lab's fake apiserver; a real one is not broken."""
    for m in masters:
        if not m.run(sh(_HAS_LAB_API), timeout=15).ok:
            raise InputError(
                f"--fault apiserver: {m.name} runs no lab apiserver ({LAB_CONTROL_DIR} is "
                "missing); this fault only exists in the lab"
            )


def signal_service(svc: ServiceManager, name: ServiceName, sig: str, *, all_procs: bool) -> float:
    """Send `sig` to the service's main process (and SIGKILL to its children when
    all_procs); returns the host's time just before."""
    pid = svc.main_pid(name)
    if pid is None:
        raise HalbError(f"{svc.t.name}: {name} is not running, cannot inject the fault")
    kids = sorted(svc.children(pid)) if all_procs else []
    res = svc.t.run(sh(_SIGNAL, sig, str(pid), *map(str, kids)), timeout=15, check=True)
    ts = parse_time(res.out)
    if ts is None:
        raise HalbError(f"{svc.t.name}: no time from the fault injection")
    return ts


def inject_service(kind: ServiceFault, svc: ServiceManager) -> float:
    """Inject a service fault; returns the host's time just before."""
    if kind.graceful:
        res = svc.t.run(
            sh('date +%s.%N; exec "$@"', *svc.stop_now_argv(kind.service)), timeout=30, check=True
        )
        return parse_time(res.out) or 0.0
    return signal_service(svc, kind.service, kind.signal, all_procs=kind.all_procs)


def restore_service(kind: ServiceFault, svc: ServiceManager) -> None:
    if svc.main_pid(kind.service) is None:
        svc.start(kind.service)
