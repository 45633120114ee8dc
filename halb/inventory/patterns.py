"""Host patterns: names, addresses, ports and [a:b] ranges, as Ansible reads them."""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import string
from collections.abc import Sequence
from typing import Any

from halb.inventory.limits import MAX_HOST_ENTRIES
from halb.kinds import number_text

# A host pattern may carry [a:b] or [a:b:step] ranges; a label is word characters and
# dashes, not ending in "-" or "_" (Ansible's hostname rule, ranges allowed anywhere).
_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.I)
_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
_HOST_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)")


def _split_port(pattern: str) -> tuple[str, int | None]:
    """`host:port` / `[v6]:port` -> (host, port); (pattern, None) when not an address."""
    if ":" not in pattern:
        return pattern, None  # what the rest would return, without the regexes
    address, port = pattern, None
    for rx in (_BRACKETED_PORT, _HOST_PORT):
        m = rx.fullmatch(address)
        if m:
            address, port = m.group(1), int(m.group(2))
    if _HOSTNAME.fullmatch(address) or _is_ipv6(address):
        return address, port
    return pattern, None


def _is_ip(s: str) -> bool:
    if len(s) > 100:  # ipaddress would repr() the whole input into its error
        return False
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _is_ipv6(s: str) -> bool:
    if len(s) > 100:
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


_ANY_RANGE = re.compile(r"\[([^\[\]]*)\]")


def _range_values(spec: str) -> Sequence[str]:
    """The values of one [begin:end(:step)], lazily (a range object, not a list)."""
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("a range must be [begin:end] or [begin:end:step]")
    beg, end = bounds[0] or "0", bounds[1]
    if any(len(b) > 253 for b in bounds):  # a name holding it would be too long anyway
        raise ValueError("a bound is longer than a host name may be")
    step = int(bounds[2]) if len(bounds) == 3 else 1
    if not end:
        raise ValueError("a range needs an end value")
    if beg in string.ascii_letters and end in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            raise ValueError("begin must not be after end")
        seq: Sequence[str] = string.ascii_letters[i : j + 1 : step]
    else:
        width = 0
        if beg[0] == "0" and len(beg) > 1:
            if len(beg) != len(end):
                raise ValueError("zero-padded begin and end must have the same length")
            width = len(beg)  # zero padding is kept
        first, last = int(beg), int(end)
        if step < 1:
            raise ValueError("the step must be at least 1")
        # len() of a range past sys.maxsize raises OverflowError: count first.
        count = (last - first) // step + 1
        if count > MAX_HOST_ENTRIES:
            raise ValueError(
                f"it makes {number_text(count)} host names, past the {MAX_HOST_ENTRIES} "
                "host entries an inventory may hold"
            )
        seq = _Padded(range(first, last + 1, step), width)
    if not seq:
        raise ValueError("the range is empty")
    return seq


class _Padded(Sequence[str]):
    def __init__(self, numbers: range, width: int) -> None:
        self.numbers, self.width = numbers, width

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, i: Any) -> Any:
        return str(self.numbers[i]).zfill(self.width)


def _expand_range(pattern: str, budget: int) -> list[str]:
    """Expand every [begin:end(:step)], first one outermost (as Ansible does).

    The number of names is known before any is made; more than `budget` is an error.
    """
    if pattern.count("[") != pattern.count("]"):
        raise ValueError("unbalanced brackets")
    pieces = _ANY_RANGE.split(pattern)  # text, spec, text, spec, ..., text
    if "[" in "".join(pieces[::2]) or "]" in "".join(pieces[::2]):
        raise ValueError("unbalanced brackets")
    ranges = [_range_values(spec) for spec in pieces[1::2]]
    total = math.prod(len(r) for r in ranges)
    if total > budget:
        raise ValueError(
            f"it makes {total} host names, past the {MAX_HOST_ENTRIES} host entries an "
            "inventory may hold"
        )
    out: list[str] = []
    for combo in itertools.product(*ranges):
        parts = list(pieces)
        parts[1::2] = combo
        out.append("".join(parts))
    return out
