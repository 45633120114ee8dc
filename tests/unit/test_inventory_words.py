"""INI host lines split like shlex.split(line, comments=True), in time linear in the line."""

from __future__ import annotations

import shlex
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halb.inventory.words import split_words


def _shlex(line: str) -> list[str] | str:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return "error"


def _ours(line: str) -> list[str] | str:
    try:
        return split_words(line)
    except ValueError:
        return "error"  # shlex and split_words may word an open quote differently


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab =#'\"\\\t\x0b\u00a0é", max_size=24))
def test_splits_like_shlex(line: str) -> None:
    assert _ours(line) == _shlex(line)


@pytest.mark.parametrize(
    "line",
    ["a#b c", 'a "#b" c', 'x="a#b"', "a'' b", '""', "a\\", "a\\#b", '"a\\x"', "#a", "a \\ b",
     'k="a\\"b"', "k='it''s'", 'x="unclosed', "x='unclosed"],
)  # fmt: skip
def test_known_lines(line: str) -> None:
    assert _ours(line) == _shlex(line)


def test_a_quoted_megabyte_splits_in_linear_time() -> None:
    # shlex took 20 s for this line; split_words takes about 0.05 s
    start = time.monotonic()
    words = split_words('lb1 ip="' + "x" * 1_000_000 + '" ansible_user=root')
    assert time.monotonic() - start < 8.0
    assert [len(w) for w in words] == [3, 1_000_003, 17]
