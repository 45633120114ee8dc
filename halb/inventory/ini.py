"""INI inventories, read like ansible-core's ini plugin."""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halb.inventory.build import _Build, _expand_hosts
from halb.inventory.model import Inventory
from halb.inventory.words import split_words
from halb.kinds import shown

_COMMENT_MARKERS = (";", "#")

# Values literal_eval would refuse anyway (a bare name other than True/False/None, an
# address): kept as strings without compiling them, which is most of the loading time.
_NOT_LITERAL = re.compile(r"(?!(?:True|False|None)$)[A-Za-z_][\w.-]*|\d+(?:\.\d+){2,}", re.ASCII)


def _literal(value: str, b: _Build, owner: str, key: str) -> Any:
    """An INI value as Ansible types it: a Python literal if it is one, else the string."""
    if _NOT_LITERAL.fullmatch(value):
        return value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # `"\e"` before 3.12
            parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
    except Exception:  # e.g. an unhashable dict key; Ansible fails the whole file too
        raise b.error(f"{owner} {shown(key)}: the value is not a usable literal") from None
    return _coerce(parsed)


def _coerce(v: Any) -> Any:
    if isinstance(v, (list, tuple, set)):
        return [_coerce(x) for x in v]
    if isinstance(v, dict):
        return {k: _coerce(x) for k, x in v.items()}
    if v is Ellipsis:
        return "..."
    if isinstance(v, complex):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return v


_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")
_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?")


@dataclass
class _Pending:
    line: int
    state: str
    name: str
    parents: list[tuple[str, int]] = field(default_factory=list)  # (group, line)


def parse_ini(text: str, source: Path) -> Inventory:
    """An INI inventory, parsed like ansible-core's ini plugin."""
    b = _Build(source)
    pending: dict[str, _Pending] = {}
    group, state = "ungrouped", "hosts"
    for n, raw in enumerate(text.splitlines(), 1):
        b.line = n
        line = raw.strip()
        if not line or line[0] in _COMMENT_MARKERS:
            continue
        m = _SECTION.fullmatch(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise b.error(
                    f"section {shown(line)} has unknown type {shown(state)} "
                    "(expected hosts, children or vars)"
                )
            if group not in b.group_hosts:
                # [g:vars] alone does not declare g; remember it to check at the end.
                if state == "vars" and group not in pending:
                    pending[group] = _Pending(n, state, group)
                b.add_group(group)
            if group in pending and state != "vars":
                if pending[group].state == "children":
                    _add_pending_children(b, group, pending)
                else:
                    del pending[group]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise b.error(f"invalid section header {shown(line)}: no spaces or other characters")

        if state == "hosts":
            _ini_host_line(b, line, group)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise b.error(f"[{group}:vars] expects key=value")
            key = key.strip()
            b.set_group_var(group, key, _literal(value.strip(), b, f"[{group}:vars]", key))
        else:
            cm = _GROUP_NAME.fullmatch(line)
            if not cm:
                raise b.error(f"[{group}:children] expects one group name per line")
            child = cm.group(1)
            if child not in b.group_hosts:
                if child not in pending:
                    pending[child] = _Pending(n, state, child, [(group, n)])
                else:
                    pending[child].parents.append((group, n))
            else:
                b.add_child(group, child)

    for decl in pending.values():
        if decl.state == "vars":
            raise b.error(
                f"section [{decl.name}:vars] is for a group that is never defined", decl.line
            )
        raise b.error(
            f"section [{decl.parents[-1][0]}:children] names group {shown(decl.name)}, "
            "which is never defined",
            decl.line,
        )
    b.line = None
    return b.finish()


def _add_pending_children(b: _Build, group: str, pending: dict[str, _Pending]) -> None:
    todo = [group]  # a worklist, not recursion: chains may be long
    while todo:
        g = todo.pop()
        decl = pending.pop(g, None)
        if decl is None:
            continue
        for parent, line in decl.parents:
            b.add_child(parent, g, line)
            if parent in pending and pending[parent].state == "children":
                todo.append(parent)


# Lines split_words would split exactly like str.split: no quotes, escapes or comments,
# only printable ASCII and tabs. Most host lines are like this.
_PLAIN_LINE = re.compile(r"[\t\x20-\x7e]*", re.ASCII)


def _ini_host_line(b: _Build, line: str, group: str) -> None:
    try:
        if _PLAIN_LINE.fullmatch(line) and not any(c in line for c in "'\"\\#"):
            tokens = line.split()
        else:
            tokens = split_words(line)
    except ValueError as e:
        raise b.error(f"cannot split the host line: {e}") from None
    if not tokens:
        raise b.error("empty host name")
    names, port = _expand_hosts(b, tokens[0], ini=True)
    variables: dict[str, Any] = {}
    for i, tok in enumerate(tokens[1:], 2):
        key, sep, value = tok.partition("=")
        if not sep:
            # The token may be half of an unquoted secret: name its place, not its text.
            raise b.error(
                f"host {shown(tokens[0])}: word {i} is not key=value "
                "(quote values that contain spaces)"
            )
        variables[key] = _literal(value, b, "host var", key)
    for h in names:
        b.add_host(h, group, port)
        for k, v in variables.items():
            b.set_host_var(h, k, v)
