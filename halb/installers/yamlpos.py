"""Where a key or a value sits in a YAML file's text, as ruamel.yaml reports it.

The editor (halb.installers.edit) splices lines at these positions; keys it cannot place
(merged in, shared by an alias) are refused here with NoPosition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from halb.errors import InputError


class NoPosition(InputError):
    """A key halb cannot edit in place: merged in (`<<: *anchor`) or shared by an alias."""

    def __init__(self, key: object, message: str = "") -> None:
        super().__init__(
            f"{str(key)[:80]}: "
            + (
                message
                or "set through a YAML merge key (<<: *anchor); halb edits only keys written "
                "out in place, so set it by hand"
            )
        )

    @classmethod
    def shared(cls, where: str, anchor: str) -> NoPosition:
        return cls(
            where,
            f"is a YAML anchor (&{anchor[:40]}) that an alias shares; halb does not edit "
            "shared values, so set it by hand",
        )


def _pos(lc_pos: Any, key: object) -> tuple[int, int]:
    if lc_pos is None:
        raise NoPosition(key)
    line, col = lc_pos
    return int(line), int(col)


def key_pos(container: CommentedMap, key: str) -> tuple[int, int]:
    return _pos(container.lc.key(key), key)


def value_pos(container: CommentedMap, key: str) -> tuple[int, int]:
    return _pos(container.lc.value(key), key)


def item_pos(seq: CommentedSeq, index: int) -> tuple[int, int]:
    return _pos(seq.lc.item(index), index)


def own_keys(mapping: CommentedMap) -> list[Any]:
    """The keys written in this mapping (not merged in), in file order."""
    data = _placed(mapping)
    return sorted((k for k in mapping if data.get(k) is not None), key=lambda k: data[k][:2])


def first_key_col(mapping: CommentedMap, where: str) -> int:
    """The indentation of a block mapping's own keys."""
    keys = own_keys(mapping)
    if not keys:
        raise NoPosition(where)
    return key_pos(mapping, keys[0])[1]


def merged(mapping: CommentedMap, key: str) -> bool:
    return key in mapping and _placed(mapping).get(key) is None


def _placed(mapping: CommentedMap) -> dict[Any, Any]:
    return getattr(mapping.lc, "data", None) or {}


def refuse_shared(node: Any, where: str, text: str) -> None:
    """Refuse to edit a node an alias (`*name`) shares: it would change with it."""
    anchor = getattr(getattr(node, "anchor", None), "value", None)
    if anchor is None:
        return
    alias = re.compile(r"\*" + re.escape(str(anchor)) + r"(?=[\s,\]}]|$)")
    if alias.search(text):
        raise NoPosition.shared(str(where), str(anchor))


def refuse_merged(mapping: CommentedMap, keys: Sequence[str], prefix: str = "") -> None:
    """Refuse to edit a key that a merge key (`<<: *anchor`) brings into `mapping`."""
    for key in keys:
        if merged(mapping, key):
            raise NoPosition(prefix + key)


def is_flow(node: Any) -> bool:
    return bool(isinstance(node, CommentedMap | CommentedSeq) and node.fa.flow_style())


def scalar_span(line: str, col: int, in_flow: bool) -> tuple[int, int, str]:
    """(start, end, quote) of the one-line scalar that starts at `col`."""
    ch = line[col : col + 1]
    if ch == '"':
        i = col + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return col, i + 1, '"'
            i += 1
        raise ValueError("unterminated double-quoted scalar")
    if ch == "'":
        i = col + 1
        while i < len(line):
            if line[i] == "'":
                if line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return col, i + 1, "'"
            i += 1
        raise ValueError("unterminated single-quoted scalar")
    body = line.rstrip("\r\n")
    end = len(body)
    m = re.search(r"\s#", body[col:])
    if m:
        end = col + m.start()
    if in_flow:
        m2 = re.search(r"[,\]}]", body[col:end])
        if m2:
            end = col + m2.start()
    while end > col and body[end - 1] in " \t":
        end -= 1
    return col, end, ""


def subtree_end(text_lines: Sequence[str], path: Sequence[tuple[CommentedMap, str]]) -> int:
    """Index of the last content line of the value at `path` (a chain of (mapping, key)).

    The value ends before the next sibling key (of this mapping or of an ancestor) or at
    the end of the file; blank and comment lines just before that belong to what follows.
    """
    stop = len(text_lines)
    for mapping, key in reversed(path):
        line = key_pos(mapping, key)[0]
        after = [p for k in own_keys(mapping) if (p := key_pos(mapping, k)[0]) > line]
        if after:
            stop = after[0]
            break
    last = stop - 1
    while last > 0 and _is_blank_or_comment(text_lines[last]):
        last -= 1
    return last


def _is_blank_or_comment(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")
