"""Ansible inventories (INI and YAML) read the way Ansible reads them, into a typed model.

Pure: no I/O but reading the one file named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Host:
    name: str
    vars: Mapping[str, Any]  # effective vars: all < parent groups < child groups < host

    @property
    def ip(self) -> str | None:
        """The address the cluster uses for this host (`ip`, else `ansible_host`)."""
        v = self.vars.get("ip") or self.vars.get("ansible_host")
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
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    source: Path
    hosts: Mapping[str, Host]  # in first-seen order
    groups: Mapping[str, Group]  # includes "all" and "ungrouped"

    def group_hosts(self, name: str) -> list[Host]:
        """Every host in the group and its descendants, in inventory order, no repeats."""
        raise NotImplementedError
