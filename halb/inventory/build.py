"""The model builder shared by the INI and YAML readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from halb import kinds
from halb.errors import InventoryError
from halb.inventory.limits import MAX_GROUP_DEPTH, MAX_HOST_ENTRIES
from halb.inventory.model import Group, Host, Inventory
from halb.inventory.patterns import _expand_range, _split_port
from halb.kinds import clip, shown

# Host vars whose silent redefinition is worth reporting; never secrets (they get quoted).
_CONFLICT_KEYS = frozenset(
    {"ip", "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port"}
    | {"ansible_user", "ansible_ssh_user", "ansible_connection"}
)


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
