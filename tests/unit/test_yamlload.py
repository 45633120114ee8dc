"""Bounded YAML: alias bombs, deep nesting and duplicate keys are errors, quickly."""

from __future__ import annotations

import itertools

import pytest
import yaml

from halb import yamlload


def bomb(levels: int = 9) -> str:
    text = 'a: &a ["l","l","l","l","l","l","l","l","l"]\n'
    names = "abcdefghijklmnop"[:levels]
    for prev, cur in itertools.pairwise(names):
        text += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


@pytest.mark.timeout(5)
def test_billion_laughs_is_an_error() -> None:
    with pytest.raises(yaml.YAMLError, match="aliases expand to"):
        yamlload.load(bomb())


def test_a_few_aliases_are_fine() -> None:
    data = yamlload.load("base: &b {port: 1}\nx: *b\ny: {<<: *b, extra: 2}\n", unique_keys=True)
    assert data["y"] == {"port": 1, "extra": 2}


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 2000)), "{a: " * 5000],
    ids=["flow", "block", "mapping"],
)
def test_deep_nesting_is_an_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(yaml.YAMLError, match="nested deeper than"):
        yamlload.load(text)


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(yaml.YAMLError, match="recursive"):
        yamlload.load("&a [*a]")


def test_duplicate_keys_refused_with_both_lines() -> None:
    with pytest.raises(yaml.YAMLError) as e:
        yamlload.load("a: 1\nb:\n  c: 1\n  c: 2\n", unique_keys=True)
    assert "duplicate key 'c' (first on line 3)" in str(e.value)
    assert e.value.problem_mark.line + 1 == 4  # type: ignore[attr-defined]


def test_duplicate_keys_allowed_when_not_asked() -> None:
    assert yamlload.load("a: 1\na: 2\n") == {"a": 2}


def test_merge_key_may_be_overridden() -> None:
    assert yamlload.load("b: &b {x: 1}\nc:\n  <<: *b\n  x: 2\n", unique_keys=True)["c"] == {"x": 2}


@pytest.mark.parametrize(
    "text",
    ["a: 2024-02-30", "a: !!bool maybe", "a: !!int abc", "a: !!float abc", "a: !!timestamp abc",
     "a: [1, {b: !!int x}]", "a: " + "1" * 5000, "? !!int y\n: 1"],
)  # fmt: skip
def test_value_that_does_not_construct_is_a_yaml_error_at_its_line(text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as e:
        yamlload.load("x: 1\n" + text)
    assert e.value.problem_mark is not None and e.value.problem_mark.line >= 1
    assert "cannot read" in str(e.value.problem)


@pytest.mark.parametrize(
    "text", ["{c: t, c: u}", "{interface: eth0, interface: eth1}", "[{a: 1, a: 1}]"]
)
def test_duplicate_keys_on_one_line_are_refused(text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError, match="duplicate key"):
        yamlload.load(text, unique_keys=True)
