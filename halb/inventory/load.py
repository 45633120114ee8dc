"""Reading an inventory file: checks on the raw bytes, then INI or YAML."""

from __future__ import annotations

from pathlib import Path

import yaml

from halb import yamlload
from halb.errors import InventoryError
from halb.files import read_input
from halb.inventory.ini import parse_ini
from halb.inventory.model import Inventory
from halb.inventory.yml import _inventory_from_yaml_data, _YamlLoader, parse_yaml

_YAML_SUFFIXES = (".yaml", ".yml", ".json")  # Ansible's default yaml_extensions


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
