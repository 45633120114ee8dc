"""Main pids of daemons started with pid files (hosts without systemd)."""

from __future__ import annotations

from collections.abc import Sequence

from halb.shell import sh

# For each (pidfile, comm) pair: the pid when that process is alive and /proc/PID/comm is
# comm (a stale pid file may name a recycled pid), else "-". A killed process that its
# parent has not reaped yet (a zombie) still has its /proc entry but is dead. Shell
# builtins only: this runs on every host at once in a deploy, and forks cost CPU. Quiet on
# stderr (a process that ends between two reads), which a deploy's chain reads as output.
PIDS_SCRIPT = r"""
exec 2>/dev/null
while [ $# -ge 2 ]; do
  pid= comm= st=
  if [ -r "$1" ]; then read -r pid < "$1" || :; fi
  case $pid in '' | *[!0-9]*) pid= ;; esac
  if [ -n "$pid" ] && [ -r /proc/"$pid"/status ]; then
    read -r comm < /proc/"$pid"/comm || :
    while read -r key val; do
      if [ "$key" = State: ]; then st=${val%% *}; break; fi
    done < /proc/"$pid"/status
  fi
  if [ -n "$pid" ] && [ "$comm" = "$2" ] && [ -n "$st" ] && [ "$st" != Z ]; then
    echo "$pid"
  else
    echo -
  fi
  shift 2
done
"""


def pids_argv(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return sh(PIDS_SCRIPT, *(x for pair in pairs for x in pair))


def parse_pids(text: str, count: int) -> list[int | None] | None:
    """One pid or None per pair asked for; None when the answer does not fit."""
    words = text.split()
    if len(words) != count:
        return None
    return [int(w) if w.isdigit() else None for w in words]
