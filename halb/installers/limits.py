"""Bounds on an installer config before the round-trip parser sees it.

ruamel.yaml's round-trip loader is pure Python and recursive: deep nesting ends in a
RecursionError, and an alias bomb (a billion-laughs file) is cheap to load but explodes
as soon as anything walks the data. One pass over the parse events (libyaml when PyYAML
has it, iterative either way) counts nesting and the nodes the document means once every
alias is expanded, and refuses the file before any of that happens.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from halb.errors import InputError

MAX_CONFIG_BYTES = 256 * 1024  # KubeKey's sample is 11 KiB, KubeSphere's common.yaml 8 KiB
MAX_DEPTH = 64  # nested mappings and lists
MAX_NODES = 5_000  # after alias expansion; the real samples hold at most 223

_Loader: Any = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)


def check_yaml_limits(text: str, source: str) -> None:
    """Raise InputError naming `source` when the YAML nests too deep or expands too far."""
    try:
        _count(pyyaml.parse(text, Loader=_Loader), source)
    except pyyaml.YAMLError:
        # libyaml reads YAML 1.1; a file only the 1.2 parser accepts is bounded by it.
        try:
            _count(YAML(typ="rt").parse(io.StringIO(text)), source)
        except YAMLError:
            return  # not YAML at all: the loader reports where


def _count(events: Iterable[Any], source: str) -> None:
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    open_at: list[tuple[str | None, int]] = []  # (anchor, node count when it opened)
    total = 0
    for ev in events:
        kind = type(ev).__name__
        if kind in ("MappingStartEvent", "SequenceStartEvent"):
            open_at.append((_anchor(ev), total))
            total += 1
            if len(open_at) > MAX_DEPTH:
                raise InputError(
                    f"{source}: YAML nested deeper than {MAX_DEPTH} levels "
                    f"(line {_line(ev)}); halb refuses it"
                )
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            anchor, start = open_at.pop()
            if anchor is not None:
                sizes[anchor] = total - start
        elif kind == "ScalarEvent":
            total += 1
            anchor = _anchor(ev)
            if anchor is not None:
                sizes[anchor] = 1
        elif kind == "AliasEvent":
            anchor = _anchor(ev)
            if anchor is None or anchor not in sizes:
                raise InputError(
                    f"{source}: YAML alias *{(anchor or '')[:40]} (line {_line(ev)}) refers to "
                    "no complete anchor (undefined or recursive); halb refuses it"
                )
            total += sizes[anchor]
        if total > MAX_NODES:
            raise InputError(
                f"{source}: YAML holds more than {MAX_NODES} values, aliases expanded "
                f"(line {_line(ev)}); halb refuses it (an installer config has a few hundred)"
            )


def _anchor(ev: Any) -> str | None:
    a = getattr(ev, "anchor", None)
    if a is None:
        return None
    value = getattr(a, "value", a)  # ruamel wraps anchors, PyYAML gives the name
    return None if value is None else str(value)


def _line(ev: Any) -> int:
    mark = getattr(ev, "start_mark", None)
    return int(getattr(mark, "line", -1)) + 1
