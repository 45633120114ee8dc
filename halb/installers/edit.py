"""Round-trip helpers: change a few values in a YAML file and leave every other byte alone.

ruamel.yaml parses the file and tells where each key and value sits (line, column). The
change itself is a splice of those lines, not a re-dump: a full ruamel dump re-indents
files that mix sequence styles (KubeKey's sample does) and drops trailing spaces, so a
diff would show lines nobody meant to touch. After the splice the text is parsed again and
must hold exactly the expected data, or the edit is refused.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.reader import ReaderError

from halb.errors import InputError
from halb.installers.limits import check_yaml_limits
from halb.installers.yamlpos import (
    NoPosition,
    is_flow,
    item_pos,
    key_pos,
    merged,
    scalar_span,
    value_pos,
)

Scalar = str | int


@dataclass(frozen=True)
class LBSettings:
    """What an installer needs to know about the load balancer in front of the apiserver."""

    address: str  # the internal VIP
    port: int  # apiserver frontend port: 6443, or 8443 when the LB hosts are the masters
    domain: str  # e.g. lb.kubesphere.local
    extra_sans: tuple[str, ...] = ()  # more names/addresses for the apiserver certificate

    @property
    def sans(self) -> list[str]:
        """Every VIP and the domain, in order, once each."""
        return dedupe([self.address, *self.extra_sans, self.domain])


@dataclass(frozen=True)
class EditResult:
    text: str
    warnings: tuple[str, ...] = ()


def dedupe(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out


# What ruamel (and PyYAML) raise for a value the resolver types but cannot construct:
# `2024-02-30`, `!!bool maybe`, `!!int abc`, an integer past Python's 4300 digits.
UNREADABLE_VALUE = (ValueError, KeyError, AttributeError, OverflowError, TypeError, IndexError)
UNREADABLE_MESSAGE = (
    "a date, number or boolean (or a value tagged !!int, !!bool, !!timestamp ...) that "
    "YAML cannot read as one; quote it to make it a string"
)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 20  # never re-wrap a line
    return y


def load_mapping(text: str, source: str, *, limits: bool = True) -> CommentedMap:
    """Parse one YAML document whose top level is a mapping, or raise InputError.

    `limits` False only for halb's own edit of a text that passed them: a few more nodes.
    """
    if limits:
        check_yaml_limits(text, source)
    try:
        docs = list(_yaml().load_all(io.StringIO(text)))
    except RecursionError:  # the limits above should make this unreachable
        raise InputError(f"{source}: YAML nested too deep; halb refuses it") from None
    except UNREADABLE_VALUE:  # ruamel's constructors raise these as they are
        raise InputError(f"{source}: not valid YAML: {UNREADABLE_MESSAGE}") from None
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = _problem(e)
        raise InputError(f"{source}: not valid YAML{where}: {problem}") from None
    docs = [d for d in docs if d is not None] or [None]
    if len(docs) > 1:
        raise InputError(f"{source}: holds {len(docs)} YAML documents; expected one")
    data = docs[0]
    if data is None:
        raise InputError(f"{source}: is empty; expected a YAML mapping")
    if not isinstance(data, CommentedMap):
        raise InputError(f"{source}: top level is {kind_name(data)}; expected a mapping")
    return data


def _problem(e: YAMLError) -> str:
    """What is wrong, without echoing the file's values (a duplicate key may be a password)."""
    if isinstance(e, ReaderError):
        ch = e.character
        code = ch if isinstance(ch, int) else ord(str(ch)[:1] or "\0")
        return f"holds the control character U+{code:04X} at character {e.position}"
    problem = str(getattr(e, "problem", None) or "cannot parse it")
    return re.sub(r" with value .*", "", problem)


def kind_name(value: Any) -> str:
    """What a YAML value is, in words (for messages)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bytes):
        return "binary data"
    return "a tagged value"


def plain(data: Any) -> Any:
    """ruamel containers -> dict/list/scalars, for comparing what two texts mean."""
    if isinstance(data, dict):
        return {plain(k): plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    if isinstance(data, bool | int | float) or data is None:
        return data
    return str(data)


_PLAIN_OK = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:-]*")


def scalar_text(value: Scalar, quote: str = "") -> str:
    """YAML text for a value; `quote` is the style to keep ('"', "'" or '' for plain)."""
    if isinstance(value, int):
        return str(value)
    if quote == "'":
        return "'" + value.replace("'", "''") + "'"
    if quote == "" and _PLAIN_OK.fullmatch(value) and _reads_as_str(value):
        return value
    return json.dumps(value)


def _reads_as_str(value: str) -> bool:
    # Ansible reads YAML 1.1 (PyYAML), KubeKey YAML 1.2: both must see the same string.
    try:
        v11 = pyyaml.safe_load(value)
        v12 = YAML(typ="safe", pure=True).load(value)
    except Exception:
        return False
    return bool(v11 == value and v12 == value)


# --- edits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replace:
    line: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Insert:
    after: int  # index of the line the new lines follow; -1 = top of file
    lines: tuple[str, ...]


@dataclass
class Editor:
    """Collects edits against the original line numbers, then applies them at once."""

    text: str
    source: str
    replaces: list[Replace] = field(default_factory=list)
    inserts: list[Insert] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines(keepends=True)
        first = self.lines[0] if self.lines else "\n"
        # New lines end as the file's first line does: CRLF, a lone CR, or LF.
        self.newline = "\r\n" if first.endswith("\r\n") else "\r" if first.endswith("\r") else "\n"

    def set_scalar(self, mapping: CommentedMap, key: str, value: Scalar, where: str) -> None:
        """Change mapping[key] in place when it differs, keeping its quote style."""
        old = mapping[key]
        if _same(old, value):
            return
        if merged(mapping, key):
            raise NoPosition(where)
        if isinstance(old, dict | list):
            raise InputError(f"{self.source}: {where} is {kind_name(old)}; expected a single value")
        kline, kcol = key_pos(mapping, key)
        line_no, col = value_pos(mapping, key)
        line = self.lines[line_no] if line_no < len(self.lines) else ""
        if old is None and (
            line_no != kline or col >= len(line.rstrip("\r\n")) or line[col] in "#\r\n"
        ):
            # `key:` with nothing after it on its line: write the value after the colon.
            colon = self.lines[kline].find(":", kcol)
            if colon < 0:
                raise InputError(f"{self.source}: {where}: unusual layout; set it by hand")
            self.replaces.append(Replace(kline, colon + 1, colon + 1, " " + scalar_text(value)))
            return
        if line[col : col + 1] in ("|", ">"):
            raise InputError(
                f"{self.source}: {where} is a block scalar (| or >); write it on one line"
            )
        try:
            start, end, quote = scalar_span(line, col, is_flow(mapping))
        except ValueError:
            raise InputError(f"{self.source}: {where}: cannot read its value on one line") from None
        self.replaces.append(Replace(line_no, start, end, scalar_text(value, quote)))

    def insert(self, after: int, lines: Sequence[str]) -> None:
        self.inserts.append(Insert(after, tuple(lines)))

    def append_items(
        self, mapping: CommentedMap, key: str, items: Sequence[str], where: str
    ) -> None:
        """Add each of `items` missing from the sequence mapping[key] at its end."""
        seq = mapping[key]
        if merged(mapping, key):
            raise NoPosition(where)
        if seq is None:
            kline, kcol = key_pos(mapping, key)
            pad = " " * (kcol + 2)
            self.insert(kline, [f"{pad}- {scalar_text(i)}" for i in items])
            return
        if not isinstance(seq, CommentedSeq):
            raise InputError(f"{self.source}: {where} is {kind_name(seq)}; expected a list")
        have = {str(v) for v in seq}
        missing = [i for i in items if i not in have]
        if not missing:
            return
        if is_flow(seq):
            self._append_flow(mapping, key, seq, missing, where)
            return
        if any(isinstance(v, dict | list) for v in seq):
            raise InputError(f"{self.source}: {where}: expected a list of addresses and names")
        last_line = item_pos(seq, len(seq) - 1)[0]
        first_line, first_col = item_pos(seq, 0)
        prefix = self.lines[first_line][:first_col]
        if prefix.strip() != "-":
            raise InputError(f"{self.source}: {where}: unusual list layout; edit it by hand")
        self.insert(last_line, [f"{prefix}{scalar_text(i)}" for i in missing])

    def _append_flow(
        self, mapping: CommentedMap, key: str, seq: CommentedSeq, missing: list[str], where: str
    ) -> None:
        line_no, col = value_pos(mapping, key)
        line = self.lines[line_no]
        close = line.find("]", col)
        if line[col : col + 1] != "[" or close < 0:
            raise InputError(f"{self.source}: {where}: a list over several lines; edit by hand")
        body = line[col + 1 : close].rstrip()
        new = ", ".join(scalar_text(i) for i in missing)
        joined = f"{body}, {new}" if body.strip() else new
        self.replaces.append(Replace(line_no, col + 1, close, joined))

    def result(self) -> str:
        lines = list(self.lines)
        nl = self.newline
        by_line: dict[int, list[Replace]] = {}
        for r in self.replaces:
            by_line.setdefault(r.line, []).append(r)
        for idx, reps in by_line.items():
            s = lines[idx]
            for r in sorted(reps, key=lambda r: r.start, reverse=True):
                s = s[: r.start] + r.text + s[r.end :]
            lines[idx] = s
        open_end = bool(lines) and not lines[-1].endswith(("\n", "\r"))
        if self.inserts and open_end:
            lines[-1] += nl
        # Same position: in the order asked. Later positions first, so indices stay valid.
        grouped: dict[int, list[str]] = {}
        for ins in self.inserts:
            grouped.setdefault(ins.after, []).extend(line + nl for line in ins.lines)
        for after in sorted(grouped, reverse=True):
            lines[after + 1 : after + 1] = grouped[after]
        text = "".join(lines)
        if open_end and text.endswith(nl):  # a file without a final newline keeps it so
            text = text[: -len(nl)]
        return text


def _same(old: Any, value: Scalar) -> bool:
    if isinstance(value, int):
        return isinstance(old, int) and not isinstance(old, bool) and int(old) == value
    return isinstance(old, str) and str(old) == value


def finish(editor: Editor, expected: Any, what: str) -> str:
    """Apply the edits and check that the new text means exactly `expected`."""
    if not editor.replaces and not editor.inserts:
        return editor.text
    new_text = editor.result()
    try:
        again = load_mapping(new_text, editor.source, limits=False)
    except InputError:
        again = None
    if again is None or plain(again) != expected:
        raise InputError(
            f"{editor.source}: could not set {what} without touching other lines "
            "(unusual layout); set it by hand"
        )
    return new_text


EditFn = Callable[[str, LBSettings, str], EditResult]


def names_source(fn: EditFn) -> EditFn:
    """Errors raised deep in an edit (a key placed by a merge key) name the file too."""

    @functools.wraps(fn)
    def wrapper(text: str, settings: LBSettings, source: str) -> EditResult:
        try:
            return fn(text, settings, source)
        except NoPosition as e:
            raise InputError(f"{source}: {e}") from None

    return wrapper


def expected_copy(data: CommentedMap) -> Any:
    return copy.deepcopy(plain(data))
