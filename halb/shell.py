"""Commands as data (pure): quoting, fixed shell scripts with their values as arguments,
batches of commands in one round trip, and masking secrets in what a command printed.
Facts, plans and transports build their argvs here; nothing here runs one."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterable, Sequence

MASK = "********"


def quote(argv: Sequence[str]) -> str:
    """One POSIX shell command line that runs exactly argv."""
    return shlex.join(argv)


def sh(script: str, *args: str) -> list[str]:
    """argv running a fixed shell script; variable parts travel as positional params."""
    return ["sh", "-c", script, "sh", *args]


def batch(argvs: Sequence[Sequence[str]]) -> tuple[list[str], str]:
    """argv running every argv in turn in one round trip, and the marker that ends each
    one's output (a line `MARKER RC`, random so no output can fake it). Each command gets
    no stdin. `split_batch` takes the output apart."""
    marker = f"--halb-{secrets.token_hex(8)}--"
    steps = [f"{quote(a)} </dev/null; printf '\\n%s %s\\n' {marker} $?" for a in argvs]
    return sh("\n".join(steps)), marker


def chain(argvs: Sequence[Sequence[str]]) -> tuple[list[str], str]:
    """argv running the argvs in turn in one round trip until one fails: the steps of one
    change on a host, each depending on the one before. Each command's stderr goes into
    its output; none reads stdin. Output as in `batch` (split it with
    `split_batch(..., count=None)`); a command with no marker did not run. A failed step
    ends the chain with exit 1 (its own status is in its marker; 255 would read as a lost
    SSH link)."""
    marker = f"--halb-{secrets.token_hex(8)}--"
    steps = [
        f"{quote(a)} </dev/null 2>&1; rc=$?; "
        f"printf '\\n%s %s\\n' {marker} $rc; [ $rc -eq 0 ] || exit 1"
        for a in argvs
    ]
    return sh("\n".join(steps)), marker


def split_batch(text: str, marker: str, count: int | None) -> list[tuple[int, str]] | None:
    """(exit status, output) of each command of a `batch` or `chain`; None when the answer
    was cut short (fewer than `count` markers). count None: every command that ran."""
    parts: list[tuple[int, str]] = []
    rest = text
    while count is None or len(parts) < count:
        head, sep, tail = rest.partition(f"\n{marker} ")
        rc, nl, rest = tail.partition("\n")
        if not sep or not nl or not rc.isdigit():
            return parts if count is None else None
        parts.append((int(rc), head))
    return parts


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, MASK)
    return text


def describe(argv: Sequence[str], limit: int = 80) -> str:
    """A short name for a command in messages (never carries secrets: argv never does)."""
    text = quote(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."
