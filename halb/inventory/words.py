"""Splitting an INI host line into words the way `shlex.split(line, comments=True)` does.

shlex builds each token a character at a time (`self.token += c` on an attribute), which
is quadratic: one quoted 1 MB value took 20 s. Here the line is cut with one regex into
runs (plain text, a quoted string, an escape, a comment, blanks), so splitting is linear
in the line's length. tests/unit/test_inventory_words.py checks it against shlex.
"""

from __future__ import annotations

import re

# shlex's whitespace is these four characters only (not every Unicode space).
_PIECE = re.compile(
    r"""(?P<plain>[^ \t\r\n'"\\#]+)"""
    r"""|'(?P<single>[^']*)'"""
    r'''|"(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"'''  # unrolled: no per-character group
    r"""|\\(?P<escaped>.)"""
    r"""|(?P<comment>\#)"""
    r"""|(?P<blank>[ \t\r\n]+)"""
    r"""|(?P<open>['"])"""
    r"""|(?P<trailing>\\)""",
    re.S,
)
_DOUBLE_ESCAPE = re.compile(r'\\(["\\])')  # inside "...", \ escapes only " and \


def split_words(line: str) -> list[str]:
    """The words of `line`; ValueError on an open quote or a trailing backslash."""
    words: list[str] = []
    word: list[str] = []
    in_word = False  # a word has begun (an empty quoted string is a word too)
    for m in _PIECE.finditer(line):
        kind = m.lastgroup
        if kind == "blank" or kind == "comment":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            if kind == "comment":
                return words
            continue
        if kind == "open":
            raise ValueError("No closing quotation")
        if kind == "trailing":
            raise ValueError("No escaped character")
        text = m.group(kind or "plain")
        if kind == "double":
            text = _DOUBLE_ESCAPE.sub(r"\1", text)
        word.append(text)
        in_word = True
    if in_word:
        words.append("".join(word))
    return words
