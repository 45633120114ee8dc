"""Inventory resource limits: ranges, group chains, nesting, aliases and many hosts end in
an error naming the line (or load), quickly and without RecursionError."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from halb.errors import InventoryError
from halb.inventory import MAX_GROUP_DEPTH, load_inventory, parse_ini


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def ini_error(text: str) -> str:
    with pytest.raises(InventoryError) as e:
        parse_ini(text, Path("hosts.ini"))
    return str(e.value)


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "pattern", ["node[0:99999999]", "node[0:9999][0:9999]", "n[a:z][0:99999][0:9]"]
)
def test_huge_range_is_refused_before_expansion(pattern: str) -> None:
    msg = ini_error(f"[all]\nlb1\n[g]\n{pattern}\n")
    assert msg.startswith("hosts.ini:4: bad host range")
    assert "host names, past the 1000000 host entries an inventory may hold" in msg


@pytest.mark.timeout(30)
def test_many_range_lines_share_one_budget() -> None:
    text = "".join(f"[g{i}]\nn[0:99999]\n" for i in range(12))
    assert "past the 1000000 host entries" in ini_error(text)


def test_ranges_expand_in_ansible_order() -> None:
    inv = parse_ini("[g]\nn[1:2][a:b]\nw[08:10]\n", Path("h"))
    assert list(inv.hosts) == ["n1a", "n1b", "n2a", "n2b", "w08", "w09", "w10"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("bottom_up", [False, True], ids=["top-down", "bottom-up"])
def test_deep_children_chain_is_an_error_not_a_recursion_error(bottom_up: bool) -> None:
    n = 5000
    links = [f"[g{i}:children]\ng{i + 1}\n" for i in range(n)]
    text = f"[g{n}]\nh1\n" + "".join(reversed(links) if bottom_up else links)
    assert f"groups nest deeper than {MAX_GROUP_DEPTH}" in ini_error(text)


@pytest.mark.timeout(10)
def test_chain_within_the_limit_loads() -> None:
    n = MAX_GROUP_DEPTH - 1
    links = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in reversed(range(n)))
    inv = parse_ini(f"[g{n}]\nh1\n" + links, Path("h"))
    assert len(inv.hosts["h1"].groups) == n + 1


@pytest.mark.timeout(5)
def test_yaml_inventory_nesting_is_bounded(tmp_path: Path) -> None:
    body = "all:\n" + "".join(
        "  " * (2 * i + 1) + "children:\n" + "  " * (2 * i + 2) + f"g{i}:\n" for i in range(300)
    )
    with pytest.raises(InventoryError, match="nested deeper than"):
        load_inventory(write(tmp_path, "h.yml", body))


@pytest.mark.timeout(5)
def test_yaml_inventory_alias_bomb(tmp_path: Path) -> None:
    lines = ['all:\n  vars:\n    a: &a ["l","l","l","l","l","l","l","l","l"]\n']
    names = "abcdefghi"
    for prev, cur in itertools.pairwise(names):
        lines.append(f"    {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n")
    with pytest.raises(InventoryError, match="aliases expand to"):
        load_inventory(write(tmp_path, "h.yml", "".join(lines)))


@pytest.mark.timeout(20)
def test_forty_thousand_hosts_load(tmp_path: Path) -> None:
    # Used to take 14 s (membership lists scanned per host); linear now, see
    # bench/inventory_bench.py for the figures.
    hosts = "".join(
        f"n{i} ip=10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}\n" for i in range(40_000)
    )
    p = write(tmp_path, "hosts.ini", "[all]\n" + hosts + "[kube-node]\nn[0:39999]\n")
    inv = load_inventory(p)
    assert len(inv.hosts) == 40_000
    assert len(inv.group_hosts("kube-node")) == 40_000


def test_bad_names_in_inventory_name_the_line(tmp_path: Path) -> None:
    assert ini_error("[g]\nok\nbad$(id)\n").startswith("hosts.ini:3: host name")
    assert ini_error("[a b c]\n").startswith("hosts.ini:1: invalid section header")
    assert "group name" in ini_error(
        "[g]\nh\n[p:children]\n" + "x" * 200 + "\n[" + "x" * 200 + "]\n"
    )
