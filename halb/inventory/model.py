"""The inventory model: hosts with their effective vars, groups, the inventory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halb.inventory.patterns import _is_ip


def _as_text(v: object) -> str:
    """str(v), except for a value Python cannot print (an int past 4300 digits, or a list
    holding one): a placeholder that no check accepts."""
    if isinstance(v, str):
        return v
    try:
        return str(v)
    except ValueError:
        return f"<{type(v).__name__} too large to print>"


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
        return _as_text(v) if v is not None else None

    @property
    def ssh_address(self) -> str:
        return _as_text(self.vars.get("ansible_host") or self.vars.get("ip") or self.name)

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", self.vars.get("ansible_ssh_port", 22)))

    @property
    def user(self) -> str | None:
        u = self.vars.get("ansible_user", self.vars.get("ansible_ssh_user"))
        return _as_text(u) if u is not None else None

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
