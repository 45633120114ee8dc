"""Main pids of daemons started with pid files (hosts without systemd)."""

from __future__ import annotations

from collections.abc import Sequence

from halb.transport import sh

# For each (pidfile, comm) pair: the pid when that process is alive and /proc/PID/comm is
# comm (a stale pid file may name a recycled pid), else "-". A killed process that its
# parent has not reaped yet (a zombie) passes kill -0 but is dead.
_PIDS = (
    'while [ $# -ge 2 ]; do pid=$(cat "$1" 2>/dev/null); '
    'if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qx "$2" /proc/"$pid"/comm '
    "&& ! grep -q '^State:[[:space:]]*Z' /proc/\"$pid\"/status; "
    'then echo "$pid"; else echo -; fi; shift 2; done'
)


def pids_argv(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return sh(_PIDS, *(x for pair in pairs for x in pair))


def parse_pids(text: str, count: int) -> list[int | None] | None:
    """One pid or None per pair asked for; None when the answer does not fit."""
    words = text.split()
    if len(words) != count:
        return None
    return [int(w) if w.isdigit() else None for w in words]
