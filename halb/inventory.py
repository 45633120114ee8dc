"""Ansible inventories (INI and YAML) read the way Ansible reads them, into a typed model.

Pure: no I/O but reading the one file named. The rules follow ansible-core's `ini` and
`yaml` inventory plugins and its InventoryData (checked against ansible-core 2.19 by
tests/unit/test_inventory_ansible.py):

- INI values, both on host lines and in `[group:vars]`, go through Python's
  `ast.literal_eval`: `22` is an int, `True` a bool, `"'22'"` the string `22`, anything
  that is not a literal stays a string. Tuples and sets become lists.
- Host lines are split like a shell (quotes group, `#` starts a comment); `;` is a
  comment marker only at the start of a line.
- Effective vars: group vars sorted by (depth, ansible_group_priority, name), so `all`
  first and the deepest child last, then the host's own vars on top.

Error messages name the file (and the line, for INI) but never quote a value: a host line
may carry a password.
"""

from __future__ import annotations

import ast
import ipaddress
import itertools
import math
import re
import shlex
import string
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from halb import kinds, yamlload
from halb.errors import InventoryError
from halb.files import read_input
from halb.kinds import clip, shown

__all__ = [
    "Group",
    "Host",
    "Inventory",
    "load_inventory",
    "parse_ini",
    "parse_yaml",
]


@dataclass(frozen=True)
class Host:
    name: str
    vars: Mapping[str, Any]  # effective vars: all < parent groups < child groups < host
    # Every group the host belongs to, directly or through a child group, sorted, without
    # "all" (Ansible's `group_names`).
    groups: tuple[str, ...] = ()

    @property
    def ip(self) -> str | None:
        """The address the cluster uses for this host (`ip`, else `ansible_host`, else the
        name when it is an address: Ansible connects to an IP-named host by its name)."""
        v = self.vars.get("ip") or self.vars.get("ansible_host")
        if v is None and _is_ip(self.name):
            return self.name
        return str(v) if v is not None else None

    @property
    def ssh_address(self) -> str:
        return str(self.vars.get("ansible_host") or self.vars.get("ip") or self.name)

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", self.vars.get("ansible_ssh_port", 22)))

    @property
    def user(self) -> str | None:
        u = self.vars.get("ansible_user", self.vars.get("ansible_ssh_user"))
        return str(u) if u is not None else None

    @property
    def password(self) -> str | None:
        p = self.vars.get("ansible_ssh_pass", self.vars.get("ansible_password"))
        return str(p) if p is not None else None

    @property
    def become_password(self) -> str | None:
        p = self.vars.get("ansible_become_pass", self.vars.get("ansible_become_password"))
        return str(p) if p is not None else None

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection", "ssh"))

    @property
    def private_key_file(self) -> str | None:
        k = self.vars.get("ansible_ssh_private_key_file", self.vars.get("ansible_private_key_file"))
        return str(k) if k is not None else None

    @property
    def ssh_common_args(self) -> str | None:
        a = self.vars.get("ansible_ssh_common_args")
        return str(a) if a is not None else None


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...] = ()  # direct members, in file order
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)  # the group's own vars
    priority: int = 1  # ansible_group_priority
    depth: int = 0  # longest path from "all"


@dataclass(frozen=True)
class Inventory:
    source: Path
    hosts: Mapping[str, Host]  # in first-seen order
    groups: Mapping[str, Group]  # includes "all" and "ungrouped"
    # What Ansible would only warn about (skipped YAML keys, a host named like a group).
    warnings: tuple[str, ...] = ()
    # (host, message): a connection var (address, port, user) given two different values
    # on two host lines. Ansible silently keeps one; callers decide whether that is fatal.
    # The message names the key, both values and their lines, not the file or the host.
    conflicts: tuple[tuple[str, str], ...] = ()

    def descendants(self, name: str) -> list[str]:
        """The group and every group below it (KeyError for an unknown group)."""
        seen = {name: None}
        todo = list(self.groups[name].children)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen[g] = None
                todo.extend(self.groups[g].children)
        return list(seen)

    def group_hosts(self, name: str) -> list[Host]:
        """Every host in the group and its descendants, in inventory order, no repeats."""
        members = {h for g in self.descendants(name) for h in self.groups[g].hosts}
        return [h for n, h in self.hosts.items() if n in members]


# --------------------------------------------------------------------------- loading

# Host vars whose silent redefinition is worth reporting; never secrets (they get quoted).
_CONFLICT_KEYS = frozenset(
    {"ip", "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port"}
    | {"ansible_user", "ansible_ssh_user", "ansible_connection"}
)
_YAML_SUFFIXES = (".yaml", ".yml", ".json")  # Ansible's default yaml_extensions
_COMMENT_MARKERS = (";", "#")
# Host names all patterns together may expand to (ranges, repeated group lines): far above
# any real inventory, far below what exhausts memory.
MAX_HOST_ENTRIES = 1_000_000
MAX_GROUP_DEPTH = 100  # [a:children] chains; real inventories nest a few levels


def load_inventory(path: Path) -> Inventory:
    """Read an inventory file; YAML or INI is chosen the way Ansible chooses."""
    raw = read_input(path, "inventory file", error=InventoryError)
    if not raw.strip():
        raise InventoryError(f"{path}: inventory file is empty")
    if b"\0" in raw:
        raise InventoryError(f"{path}: not a text file (it contains NUL bytes)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise InventoryError(
            f"{path}: starts with a UTF-8 byte order mark, which Ansible cannot read; "
            "save it without BOM"
        )
    if raw.lstrip().startswith(b"$ANSIBLE_VAULT"):
        raise InventoryError(f"{path}: vault-encrypted inventories are not supported")
    text = _decode(raw, path)

    suffix = Path(str(path)).suffix  # case-sensitive, as os.path.splitext in Ansible
    if suffix in _YAML_SUFFIXES:
        return parse_yaml(text, path)
    if suffix == "":
        # Ansible tries its yaml plugin first on files without extension and falls back
        # to ini when the content is not a non-empty YAML mapping.
        try:
            data = yamlload.load(text, _YamlLoader)
        except (yaml.YAMLError, InventoryError):
            data = None
        if isinstance(data, dict) and data and not data.get("plugin"):
            return _inventory_from_yaml_data(data, path)
    return parse_ini(text, path)


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Like Ansible: undecodable bytes are tolerated on comment lines only.
    lines = []
    for n, line in enumerate(raw.splitlines(), 1):
        if line[:1] in (b";", b"#"):
            lines.append("")
            continue
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise InventoryError(f"{path}:{n}: not valid UTF-8 text") from None
    return "\n".join(lines)


# --------------------------------------------------------------------------- the model builder


class _Build:
    """Mirror of ansible-core's InventoryData: groups, hosts, edges, then reconcile.

    Every step is linear in the input: memberships are dicts (insertion-ordered sets),
    cycles and depths are found once at the end, nothing recurses on the input's shape.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self.line: int | None = None  # current INI line, for messages
        self.group_hosts: dict[str, dict[str, None]] = {}
        self.children: dict[str, dict[str, int | None]] = {}  # child -> line of the edge
        self.parents: dict[str, dict[str, None]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.priority: dict[str, int] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self.conflicts: list[tuple[str, str]] = []
        self.seen: dict[tuple[str, str], tuple[Any, int | None]] = {}  # (host, key) -> value, line
        self.budget = MAX_HOST_ENTRIES  # host names any pattern may still produce
        for g in ("all", "ungrouped"):
            self.add_group(g)
        self.add_child("all", "ungrouped")

    def error(self, message: str, line: int | None = None) -> InventoryError:
        n = line if line is not None else self.line
        where = f"{self.source}:{n}" if n is not None else f"{self.source}"
        return InventoryError(f"{where}: {message}")

    def add_group(self, name: object) -> str:
        if not isinstance(name, str) or not name:
            raise self.error(f"invalid group name {shown(name)}: it must be a non-empty string")
        if name not in self.group_hosts:
            try:
                kinds.group_name(name)
            except ValueError as e:
                raise self.error(str(e)) from None
            self.group_hosts[name] = {}
            self.children[name] = {}
            self.parents[name] = {}
            self.group_vars[name] = {}
            self.priority[name] = 1
        return name

    def add_host(self, name: str, group: str, port: int | None) -> None:
        if not name:
            raise self.error("empty host name")
        if name not in self.host_vars:
            try:
                kinds.host_name(name)
            except ValueError as e:
                raise self.error(str(e)) from None
            # The port of `host:port` counts only where the host is first seen.
            self.host_vars[name] = {"ansible_port": port} if port else {}
            self.seen[(name, ":port")] = (port, self.line)
        elif port:
            first, line = self.seen[(name, ":port")]
            if first != port:
                self.conflicts.append(
                    (
                        name,
                        f"port {port}{self._line()} is ignored: Ansible keeps the port of "
                        f"the host's first line: {first or 'none'}{self._line(line)}",
                    )
                )
        self.group_hosts[group][name] = None

    def add_child(self, parent: str, child: str, line: int | None = -1) -> None:
        if parent not in self.group_hosts:
            raise self.error(f"{shown(parent)} is not a known group")
        if child in self.group_hosts:
            if child == parent:
                raise self.error(f"group {shown(child)} cannot be a child of itself")
            if child in self.children[parent]:
                return
            # Cycles are looked for once, in finish(): checking each edge here would
            # make a long chain of groups quadratic.
            self.children[parent][child] = self.line if line == -1 else line
            self.parents[child][parent] = None
        elif child in self.host_vars:
            self.add_host(child, parent, None)
        else:
            raise self.error(f"{shown(child)} is not a known host nor group")

    def set_group_var(self, group: str, key: Any, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.priority[group] = int(value)
            except (TypeError, ValueError, OverflowError):
                raise self.error(
                    f"group {shown(group)}: ansible_group_priority must be an integer"
                ) from None
            return
        self.group_vars[group][key] = value

    def set_host_var(self, host: str, key: Any, value: Any) -> None:
        # Ansible looks the name up among groups first: a host named like a group
        # gives its line vars to the group.
        if host in self.group_hosts:
            self.set_group_var(host, key, value)
        else:
            self.host_vars[host][key] = value
            self._note(host, key, value)

    def _line(self, line: int | None = -1) -> str:
        n = self.line if line == -1 else line
        return f" (line {n})" if n is not None else ""

    def _note(self, host: str, key: Any, value: Any) -> None:
        if not isinstance(key, str) or key not in _CONFLICT_KEYS:
            return
        before = self.seen.get((host, key))
        self.seen[(host, key)] = (value, self.line)
        if before is not None and before[0] != value:
            self.conflicts.append(
                (
                    host,
                    f"{key} is {clip(before[0])}{self._line(before[1])} and "
                    f"{clip(value)}{self._line()}; Ansible uses the last one",
                )
            )

    def _order(self) -> list[str]:
        """Groups parents-first (Kahn); a cycle or too deep a nesting is an error."""
        pending = {g: len(ps) for g, ps in self.parents.items()}
        todo = [g for g, n in pending.items() if n == 0]
        order: list[str] = []
        while todo:
            g = todo.pop()
            order.append(g)
            for c in self.children[g]:
                pending[c] -= 1
                if pending[c] == 0:
                    todo.append(c)
        if len(order) < len(self.group_hosts):
            raise self._cycle({g for g, n in pending.items() if n > 0})
        return order

    def _cycle(self, stuck: set[str]) -> InventoryError:
        # Every group left has a parent left, so walking up from one must repeat.
        path: dict[str, None] = {}
        g = min(stuck)
        while g not in path:
            path[g] = None
            g = next(p for p in self.parents[g] if p in stuck)
        ring = list(path)[list(path).index(g) :]  # each one's parent is the next
        edges = [(ring[(i + 1) % len(ring)], c) for i, c in enumerate(ring)]
        lines = {(p, c): self.children[p][c] for p, c in edges}
        parent, child = max(lines, key=lambda e: lines[e] or 0)
        return self.error(
            f"adding group {shown(child)} as a child of {shown(parent)} makes a cycle "
            f"({shown(child)} is already above {shown(parent)})",
            lines[(parent, child)],
        )

    def finish(self) -> Inventory:
        # Ansible's reconcile_inventory: every top group goes under "all"; "ungrouped"
        # holds exactly the hosts that are in no other group than "all".
        for g in list(self.group_hosts):
            if g != "all" and not self.parents[g]:
                self.add_child("all", g, None)
        order = self._order()
        depth: dict[str, int] = {}
        above: dict[str, frozenset[str]] = {}  # every ancestor of each group
        for g in order:
            ps = self.parents[g]
            depth[g] = 1 + max(depth[p] for p in ps) if ps else 0
            if depth[g] > MAX_GROUP_DEPTH:
                raise self.error(f"groups nest deeper than {MAX_GROUP_DEPTH} (at {shown(g)})")
            above[g] = frozenset(ps).union(*(above[p] for p in ps))
        ungrouped = self.group_hosts["ungrouped"]
        direct: dict[str, list[str]] = {h: [] for h in self.host_vars}
        for g, members in self.group_hosts.items():
            for h in members:
                direct[h].append(g)
        member_of: dict[str, frozenset[str]] = {}
        for h, gs in direct.items():
            closure = frozenset(gs).union(*(above[g] for g in gs))
            if "ungrouped" in closure:
                if closure - {"all", "ungrouped"} and "ungrouped" in gs:
                    del ungrouped[h]
                    rest = [g for g in gs if g != "ungrouped"]
                    closure = frozenset(rest).union(*(above[g] for g in rest))
            elif closure <= {"all"}:
                ungrouped[h] = None
                closure |= {"ungrouped", "all"}
            member_of[h] = closure

        order_key = {g: (depth[g], self.priority[g], g) for g in self.group_hosts}
        for conflict in sorted(set(self.group_hosts) & set(self.host_vars)):
            self.warnings.append(f"{self.source}: {shown(conflict)} is both a group and a host")

        hosts: dict[str, Host] = {}
        for h, hvars in self.host_vars.items():
            eff: dict[str, Any] = {}
            for g in sorted(member_of[h], key=order_key.__getitem__):
                eff.update(self.group_vars[g])
            eff.update(hvars)
            names = tuple(sorted(g for g in member_of[h] if g != "all"))
            hosts[h] = Host(name=h, vars=eff, groups=names)
        groups = {
            g: Group(
                name=g,
                hosts=tuple(self.group_hosts[g]),
                children=tuple(self.children[g]),
                vars=dict(self.group_vars[g]),
                priority=self.priority[g],
                depth=depth[g],
            )
            for g in self.group_hosts
        }
        return Inventory(
            source=self.source,
            hosts=hosts,
            groups=groups,
            warnings=tuple(self.warnings),
            conflicts=tuple(self.conflicts),
        )


# --------------------------------------------------------------------------- host patterns

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
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _is_ipv6(s: str) -> bool:
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
        seq = _Padded(range(int(beg), int(end) + 1, step), width)
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


def _expand_hosts(b: _Build, pattern: str, ini: bool) -> tuple[list[str], int | None]:
    address, port = _split_port(pattern)
    if ini and pattern.strip().endswith(":") and port is None:
        raise b.error(f"host {shown(pattern)} ends with ':'; that character introduces a port")
    if "[" in address:
        try:
            names = _expand_range(address, b.budget)
        except ValueError as e:
            raise b.error(f"bad host range {shown(address)}: {e}") from None
    else:
        names = [address]
    b.budget -= len(names)
    if b.budget < 0:
        raise b.error(f"past the {MAX_HOST_ENTRIES} host entries an inventory may hold")
    if ini and any(n.strip() == "---" for n in names):
        raise b.error("host '---' found: this looks like a YAML file")
    return names, port


# --------------------------------------------------------------------------- INI


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


# Lines shlex would split exactly like str.split: no quotes, escapes or comments, only
# printable ASCII and tabs. shlex is slow, and most host lines are like this.
_PLAIN_LINE = re.compile(r"[\t\x20-\x7e]*", re.ASCII)


def _ini_host_line(b: _Build, line: str, group: str) -> None:
    try:
        if _PLAIN_LINE.fullmatch(line) and not any(c in line for c in "'\"\\#"):
            tokens = line.split()
        else:
            tokens = shlex.split(line, comments=True)
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


# --------------------------------------------------------------------------- YAML


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1, like Ansible's) plus Ansible's `!unsafe` tag."""


def _unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return None  # pragma: no cover - no other node kinds


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise InventoryError(
        f"line {node.start_mark.line + 1}: vault-encrypted values are not supported"
    )


_YamlLoader.add_constructor("!unsafe", _unsafe)
_YamlLoader.add_constructor("!vault", _vault)


def parse_yaml(text: str, source: Path) -> Inventory:
    """A YAML inventory (all: hosts/vars/children, nested), read like Ansible's yaml plugin."""
    try:
        data = yamlload.load(text, _YamlLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark else f"{source}"
        problem = shown(e.problem or e.context, 200)[1:-1]
        raise InventoryError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise InventoryError(f"{source}: invalid YAML: {e}") from None
    except InventoryError as e:
        raise InventoryError(f"{source}:{str(e).removeprefix('line ')}") from None
    if not data:
        raise InventoryError(f"{source}: YAML inventory is empty")
    if not isinstance(data, dict):
        raise InventoryError(
            f"{source}: a YAML inventory must be a mapping of groups, not a {_kind(data)}"
        )
    if data.get("plugin"):
        raise InventoryError(
            f"{source}: this is an inventory plugin configuration, not an inventory"
        )
    return _inventory_from_yaml_data(data, source)


def _kind(v: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(v), type(v).__name__
    )


def _inventory_from_yaml_data(data: Mapping[Any, Any], source: Path) -> Inventory:
    b = _Build(source)
    for name, gdata in data.items():
        _yaml_group(b, name, gdata)
    return b.finish()


def _yaml_group(b: _Build, name: Any, gdata: Any) -> Any:
    if not isinstance(gdata, (dict, type(None))):
        b.warnings.append(f"{b.source}: skipped {shown(name)}: a group must be a mapping")
        return name
    group = b.add_group(name)
    if gdata is None:
        return group
    sections: dict[Any, Any] = dict(gdata)
    for section in ("vars", "children", "hosts"):
        if section in sections:
            if isinstance(sections[section], str):  # `hosts: node1` means {node1: null}
                sections[section] = {sections[section]: None}
            if not isinstance(sections[section], (dict, type(None))):
                raise b.error(
                    f"group {shown(group)}: {shown(section)} must be a mapping, "
                    f"not a {_kind(sections[section])}"
                )
    for key, value in sections.items():
        if value is None:
            continue
        if not isinstance(value, dict):
            b.warnings.append(
                f"{b.source}: group {shown(group)}: skipped {shown(key)}, not a mapping"
            )
        elif key == "vars":
            for k, v in value.items():
                b.set_group_var(group, k, v)
        elif key == "children":
            for sub, subdata in value.items():
                b.add_child(group, _yaml_group(b, sub, subdata))
        elif key == "hosts":
            for pattern, hvars in value.items():
                _yaml_hosts(b, group, pattern, hvars)
        else:
            b.warnings.append(
                f"{b.source}: group {shown(group)}: skipped unexpected key {shown(key)} "
                "(only vars, children and hosts are valid)"
            )
    return group


def _yaml_hosts(b: _Build, group: str, pattern: Any, hvars: Any) -> None:
    if not isinstance(pattern, str):
        raise b.error(
            f"group {shown(group)}: host {shown(pattern)} must be a string (quote numbers)"
        )
    names, port = _expand_hosts(b, pattern, ini=False)
    hvars = hvars or {}
    if not isinstance(hvars, dict):
        raise b.error(f"host {shown(pattern)} in group {shown(group)}: vars must be a mapping")
    for h in names:
        b.add_host(h, group, port)
        for k, v in hvars.items():
            b.set_host_var(h, k, v)
