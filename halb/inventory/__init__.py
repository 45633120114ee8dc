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

from halb.inventory.ini import parse_ini
from halb.inventory.limits import MAX_GROUP_DEPTH, MAX_HOST_ENTRIES
from halb.inventory.load import load_inventory
from halb.inventory.model import Group, Host, Inventory
from halb.inventory.yml import parse_yaml

__all__ = [
    "MAX_GROUP_DEPTH",
    "MAX_HOST_ENTRIES",
    "Group",
    "Host",
    "Inventory",
    "load_inventory",
    "parse_ini",
    "parse_yaml",
]
