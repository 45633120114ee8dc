"""halb reads every corpus inventory exactly as ansible-core does.

For each file under tests/fixtures/inventories/ the same file is loaded by ansible-core's
InventoryManager and compared: hosts, groups (direct and transitive members, children,
own vars, priority, depth), each host's groups and its effective vars, types included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from halb.inventory import Inventory, load_inventory

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
FILES = sorted(p for p in CORPUS.iterdir() if p.is_file())
# Vars Ansible adds to every host itself; halb's Host.vars holds only inventory vars.
MAGIC = {"inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short"}
MAGIC |= {"group_names"}


def plain(v: Any) -> Any:
    """A value with its exact base type spelled out, so 1, True and "1" never compare equal."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", int(v))
    if isinstance(v, float):
        return ("float", float(v))
    if isinstance(v, str):
        return ("str", str.__str__(v))
    if isinstance(v, (list, tuple)):
        return ("list", [plain(x) for x in v])
    if isinstance(v, dict):
        return ("dict", {plain(k): plain(x) for k, x in v.items()})
    return (type(v).__name__, repr(v))


@pytest.fixture
def ansible_inventory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pytest.importorskip("ansible")
    from ansible.inventory.manager import InventoryManager  # type: ignore[import-untyped]
    from ansible.parsing.dataloader import DataLoader  # type: ignore[import-untyped]
    from ansible.utils.display import Display  # type: ignore[import-untyped]

    # Ansible warns about "-" in group names and the like; not this test's business.
    for name in ("warning", "deprecated", "display", "vvvv", "vvv"):
        monkeypatch.setattr(Display, name, lambda *a, **k: None)

    def load(path: Path) -> Any:
        im = InventoryManager(loader=DataLoader(), sources=[str(path)])
        assert str(path) in im._inventory.processed_sources, f"ansible could not parse {path}"
        return im

    yield load


def test_corpus_is_big_enough() -> None:
    assert len(FILES) >= 15
    names = {p.name for p in FILES}
    assert {"kubesphere_shape.ini", "kubesphere_lb.ini", "kubespray_shape.ini"} <= names
    assert any(p.suffix in (".yml", ".yaml") for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_same_as_ansible(path: Path, ansible_inventory: Any) -> None:
    from ansible.inventory.helpers import get_group_vars  # type: ignore[import-untyped]
    from ansible.utils.vars import combine_vars  # type: ignore[import-untyped]

    im = ansible_inventory(path)
    inv = load_inventory(path)

    assert list(inv.hosts) == list(im.hosts), "hosts and their first-seen order"
    assert set(inv.groups) == set(im.groups)
    for name, ag in im.groups.items():
        g = inv.groups[name]
        assert list(g.hosts) == [h.name for h in ag.hosts], f"direct members of {name}"
        assert list(g.children) == [c.name for c in ag.child_groups], f"children of {name}"
        # A host named like a group hands even Ansible's inventory_file to the group.
        own = {k: v for k, v in ag.get_vars().items() if k not in MAGIC}
        assert plain(dict(g.vars)) == plain(own), f"own vars of {name}"
        assert (g.priority, g.depth) == (ag.priority, ag.depth), f"sort key of {name}"
        members = [h.name for h in inv.group_hosts(name)]
        assert len(members) == len(set(members)), f"{name} repeats a host"
        assert set(members) == {h.name for h in ag.get_hosts()}, f"members of {name}"
        assert members == [h for h in inv.hosts if h in set(members)], "inventory order"

    for name, ah in im.hosts.items():
        host = inv.hosts[name]
        expected = combine_vars(get_group_vars(ah.get_groups()), ah.get_vars())
        expected = {k: v for k, v in expected.items() if k not in MAGIC}
        assert plain(dict(host.vars)) == plain(expected), f"effective vars of {name}"
        assert list(host.groups) == ah.get_magic_vars()["group_names"]


def test_corpus_is_not_trivial() -> None:
    """The corpus exercises what it claims: ranges, ports, types, YAML, ungrouped hosts."""
    invs: dict[str, Inventory] = {p.name: load_inventory(p) for p in FILES}
    assert "web02.example.test" in invs["ranges.ini"].hosts
    assert "pad009" in invs["ranges.ini"].hosts
    assert invs["ports.ini"].hosts["withport"].port == 2201
    assert invs["types.ini"].hosts["h1"].vars["i"] == 42
    assert invs["ungrouped.ini"].groups["ungrouped"].hosts
    assert not invs["kubespray_shape.ini"].hosts
    assert invs["hosts_yaml"].hosts["ym1"].ip == "192.0.2.91"
    assert invs["hosts"].hosts["ma1"].ip == "192.0.2.81"
