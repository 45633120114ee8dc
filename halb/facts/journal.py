"""The last journal lines of a unit that is not well, for `halb status` on systemd hosts.

Which units get them is decided from their state (`halb.facts.units`), so a healthy host
costs no journal read at all. The lines are bounded in number and length, and secrets
are masked before anything keeps them: a daemon that rejects its configuration may quote
the line it choked on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from halb.facts.units import UnitState
from halb.shell import MASK, scrub, sh

U = TypeVar("U", bound=str)
LINES = 8  # per unit
WIDTH = 300  # characters kept of a line (cut on the host too, so a huge line never travels)
RECENT = 600.0  # seconds: an automatic restart this recent is worth showing

# Per (unit, which) pair, its last lines: `all`, or only systemd's own (`_PID=1`: why and
# when it restarted the unit, which the daemon's start-up chatter would push out of the
# last few). `-q` leaves out journalctl's own "-- No entries --" notes.
_JOURNAL = r"""
n=$1 w=$2; shift 2
while [ $# -gt 1 ]; do
  echo "@@journal $1"
  m=; if [ "$2" = manager ]; then m=_PID=1; fi
  journalctl -q -u "$1" $m -n "$n" --no-pager -o short-iso 2>&1 | cut -c "1-$w"
  shift 2
done
"""

# A value after a keyword that names a secret, in a config line or a message quoting one:
# keepalived's `auth_pass X`, HAProxy's `stats auth user:X`, `password X`, `key=X`...
_SECRET_AFTER = re.compile(
    r"(?i)(\b(?:auth_pass|auth-pass|stats\s+auth|insecure-password|password|passwd|passphrase"
    r"|secret|ansible_ssh_pass|ansible_become_pass)['\"]?(?:\s*[:=]\s*|\s+)['\"]?)"
    r"[^\s'\"]+"
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")


@dataclass(frozen=True)
class UnitJournal:
    unit: str
    reason: str  # why it is shown: "failed", "up for 30 s after 2 automatic restarts"
    lines: tuple[str, ...]
    running: bool = False  # shown for its recent restarts, not for being down


def reason(state: UnitState, now: float | None, recent: float = RECENT) -> str | None:
    """Why the unit's journal is worth showing, None for a healthy unit.

    `now`: the host's clock in seconds, comparable with `state.since_us` (see GATHER in
    halb.facts.lbstate: /proc/uptime, which also counts time suspended, so a restart
    before a suspend looks older than it is, never younger)."""
    if state.load == "not-found":
        return None  # not installed: no journal to read (status says it is not running)
    if not state.running:
        return state.label
    if state.restarts and state.since_us is not None and now is not None:
        ago = now - state.since_us / 1e6
        if 0 <= ago < recent:
            n = state.restarts
            return f"up for {ago:.0f} s after {n} automatic restart{'s' if n > 1 else ''}"
    return None


def wanted(states: Mapping[U, UnitState], now: float | None) -> dict[U, str]:
    """{unit: reason} of the units whose journal `halb status` shows."""
    out: dict[U, str] = {}
    for unit, st in states.items():
        why = reason(st, now)
        if why is not None:
            out[unit] = why
    return out


def journal_argv(units: Mapping[str, bool], lines: int = LINES, width: int = WIDTH) -> list[str]:
    """`units`: {unit: True for systemd's own lines only (a unit it restarted, running
    again), False for all of them (a unit that is down)}."""
    pairs = [x for u, manager in units.items() for x in (u, "manager" if manager else "all")]
    return sh(_JOURNAL, str(lines), str(width), *pairs)


def _cut_secret(line: str, secrets: Iterable[str]) -> str:
    """A line cut on the host may end in the first part of a secret: mask that too."""
    for s in secrets:
        for k in range(len(s) - 1, 0, -1):
            if line.endswith(s[:k]):
                return line[:-k] + MASK
    return line


def clean(line: str, secrets: Iterable[str | None] = (), width: int = WIDTH) -> str:
    """One journal line fit to show: secrets masked, control characters replaced, cut."""
    known = [s for s in secrets if s]
    line = line.rstrip("\r\n")
    was_cut = len(line.encode()) >= width
    line = _SECRET_AFTER.sub(lambda m: m.group(1) + MASK, line)
    line = scrub(line, known)
    if was_cut:
        line = _cut_secret(line, known)
    line = _CONTROL.sub("?", line)
    return line if len(line) <= width else line[: width - 1] + "…"


def parse_journal(
    text: str, units: Sequence[str], secrets: Iterable[str | None] = (), lines: int = LINES
) -> dict[str, tuple[str, ...]]:
    """{unit: its last lines, cleaned} from `journal_argv` output; a unit whose section
    is missing gets no lines."""
    known = [s for s in secrets if s]
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for raw in text.split("\n"):  # not splitlines: a message's \x1c or \x85 is no line end
        if raw.startswith("@@journal "):
            name = raw.removeprefix("@@journal ").strip()
            cur = out.setdefault(name, []) if name in units else None
        elif cur is not None and raw.strip() and not raw.startswith("-- "):
            cur.append(clean(raw, known))
    return {u: tuple(out.get(u, [])[-lines:]) for u in units}
