"""YAML loading with limits, for halb.yaml and YAML inventories.

PyYAML's safe loader shares aliased nodes, so a billion-laughs file loads fast and then
explodes in whatever walks the result (validation, messages). Here the composed node
graph is measured before anything is constructed: its size with every alias expanded
may exceed its own node count by at most `MAX_ALIAS_EXPANSION`, and nesting stops at
`MAX_DEPTH` (deeper input would hit Python's recursion limit). Errors are
`yaml.MarkedYAMLError`s, so callers report the line as for any YAML error.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from halb.kinds import shown

MAX_DEPTH = 100
MAX_ALIAS_EXPANSION = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def expanded_size(root: Node) -> tuple[int, int]:
    """(distinct nodes, nodes with every alias expanded); iterative, refuses cycles."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            continue
        if key in size:
            continue
        if key in on_path:
            raise ComposerError(
                None, None, "recursive alias (a node contains itself)", node.start_mark
            )
        on_path.add(key)
        stack.append((node, True))
        for k in kids:
            if id(k) in on_path:
                raise ComposerError(
                    None, None, "recursive alias (a node contains itself)", k.start_mark
                )
            if id(k) not in size:
                stack.append((k, False))
    return len(size), size[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class _Limits:
    """Mixin for a PyYAML Loader class (it must come first in the bases)."""

    unique_keys = False
    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        finally:
            self._depth -= 1

    def get_single_node(self) -> Node | None:
        node: Node | None = super().get_single_node()  # type: ignore[misc]
        if node is not None:
            distinct, expanded = expanded_size(node)
            if expanded > distinct + MAX_ALIAS_EXPANSION:
                raise ComposerError(
                    None,
                    None,
                    f"aliases expand to {expanded} nodes from {distinct} "
                    f"(at most {MAX_ALIAS_EXPANSION} more are allowed)",
                    node.start_mark,
                )
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # A tag or a resolved scalar whose value does not construct (`2024-02-30`,
        # `!!bool maybe`, `!!int abc`, a 5000-digit int) raises a plain Python error in
        # PyYAML's constructors: made a YAML error at the node. The value is not quoted:
        # it may be a password.
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[misc]
        except (ValueError, KeyError, AttributeError, OverflowError, TypeError, IndexError):
            tag = _TAG_NAMES.get(node.tag, node.tag)
            raise ConstructorError(
                None,
                None,
                f"a {shown(tag)[1:-1]} value that YAML cannot read as one "
                "(quote it to make it a string)",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> Any:
        if self.unique_keys and isinstance(node, MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = key in first
                except TypeError:
                    continue  # unhashable: the constructor reports it
                if seen:  # also on the same line: `{cluster: t, cluster: u}`
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {shown(key)} (first on line {first[key]})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


_TAG_NAMES = {
    f"tag:yaml.org,2002:{t}": f"!!{t}"
    for t in ("bool", "int", "float", "timestamp", "set", "binary", "omap", "pairs", "str")
}


_classes: dict[tuple[type[yaml.SafeLoader], bool], type[yaml.SafeLoader]] = {}


def limited(base: type[yaml.SafeLoader], unique_keys: bool = False) -> type[yaml.SafeLoader]:
    """`base` with the depth and alias limits (and duplicate keys refused, if asked)."""
    key = (base, unique_keys)
    if key not in _classes:
        name = f"Limited{base.__name__}"
        _classes[key] = type(name, (_Limits, base), {"unique_keys": unique_keys})
    return _classes[key]


def load(
    text: str, base: type[yaml.SafeLoader] = yaml.SafeLoader, *, unique_keys: bool = False
) -> Any:
    loader = limited(base, unique_keys)(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
