"""YAML inventories, read like ansible-core's yaml plugin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from halb import yamlload
from halb.errors import InventoryError
from halb.inventory.build import _Build, _expand_hosts
from halb.inventory.model import Inventory
from halb.kinds import shown


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
