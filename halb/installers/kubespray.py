"""Kubespray `group_vars/all/all.yml`: the external load balancer for the apiserver.

Kubespray reads `apiserver_loadbalancer_domain_name` and `loadbalancer_apiserver:
{address, port}` for an external LB, and `supplementary_addresses_in_ssl_keys` for extra
names in the apiserver certificate. KubeSphere 2.1's `conf/common.yaml` feeds the same
variables to its bundled Kubespray, so kubesphere.py uses this module too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from halb.errors import InputError
from halb.installers.edit import (
    Editor,
    EditResult,
    LBSettings,
    expected_copy,
    finish,
    kind_name,
    load_mapping,
    names_source,
    scalar_text,
)
from halb.installers.yamlpos import (
    first_key_col,
    is_flow,
    key_pos,
    refuse_merged,
    refuse_shared,
    subtree_end,
)

DOMAIN_KEY = "apiserver_loadbalancer_domain_name"
LB_KEY = "loadbalancer_apiserver"
SANS_KEY = "supplementary_addresses_in_ssl_keys"

# The commented-out example of the LB block that both sample files carry.
_EXAMPLE = re.compile(r"#+\s*loadbalancer_apiserver\s*:")


@names_source
def edit_kubespray_vars(text: str, settings: LBSettings, source: str) -> EditResult:
    """Set the LB endpoint and SANs; every other line stays as it is."""
    data = load_mapping(text, source)
    refuse_merged(data, [DOMAIN_KEY, LB_KEY, SANS_KEY])
    ed = Editor(text, source)
    expected = expected_copy(data)
    new_top: list[str] = []

    if DOMAIN_KEY in data:
        ed.set_scalar(data, DOMAIN_KEY, settings.domain, DOMAIN_KEY)
    else:
        new_top.append(f"{DOMAIN_KEY}: {scalar_text(settings.domain, chr(34))}")
    expected[DOMAIN_KEY] = settings.domain

    wanted: dict[str, str | int] = {"address": settings.address, "port": settings.port}
    lb = data.get(LB_KEY)
    if LB_KEY not in data:
        new_top.append(f"{LB_KEY}:")
        new_top += [f"  {k}: {scalar_text(v)}" for k, v in wanted.items()]
        expected[LB_KEY] = dict(wanted)
    elif lb is None:
        line = key_pos(data, LB_KEY)[0]
        ed.insert(line, [f"  {k}: {scalar_text(v)}" for k, v in wanted.items()])
        expected[LB_KEY] = dict(wanted)
    elif isinstance(lb, CommentedMap):
        refuse_merged(lb, list(wanted), f"{LB_KEY}.")
        refuse_shared(lb, LB_KEY, text)
        _update_block(ed, data, lb, wanted)
        expected[LB_KEY] = {**expected[LB_KEY], **wanted}
    else:
        raise InputError(f"{source}: {LB_KEY} is {kind_name(lb)}; expected a mapping")

    if SANS_KEY in data:
        refuse_shared(data[SANS_KEY], SANS_KEY, text)
        ed.append_items(data, SANS_KEY, settings.sans, SANS_KEY)
        expected[SANS_KEY] = _merged(expected[SANS_KEY], settings.sans)
    else:
        new_top.append(f"{SANS_KEY}:")
        new_top += [f"  - {scalar_text(s)}" for s in settings.sans]
        expected[SANS_KEY] = list(settings.sans)

    if new_top:
        ed.insert(_insert_point(ed.lines), new_top)
    return EditResult(finish(ed, expected, f"{DOMAIN_KEY}/{LB_KEY}/{SANS_KEY}"))


def _update_block(
    ed: Editor, data: CommentedMap, lb: CommentedMap, wanted: dict[str, str | int]
) -> None:
    missing = {k: v for k, v in wanted.items() if k not in lb}
    for k, v in wanted.items():
        if k in lb:
            ed.set_scalar(lb, k, v, f"{LB_KEY}.{k}")
    if not missing:
        return
    if is_flow(lb) or not lb:
        raise InputError(
            f"{ed.source}: {LB_KEY} is written inline without "
            f"{'/'.join(missing)}; write it as a block (address:, port: on their own lines)"
        )
    pad = " " * first_key_col(lb, LB_KEY)
    last = subtree_end(ed.lines, [(data, LB_KEY)])
    ed.insert(last, [f"{pad}{k}: {scalar_text(v)}" for k, v in missing.items()])


def _merged(existing: Any, items: Sequence[str]) -> list[Any]:
    have = list(existing or [])
    seen = {str(v) for v in have}
    return have + [i for i in items if i not in seen]


def _insert_point(lines: Sequence[str]) -> int:
    """Right after the commented-out LB example at the top level, else the end of the file."""
    for i, line in enumerate(lines):
        if not _EXAMPLE.match(line):
            continue
        # Take the whole run of comment lines the example sits in.
        j = i
        while j + 1 < len(lines) and lines[j + 1].startswith("#"):
            j += 1
        k = j + 1
        while k < len(lines) and (not lines[k].strip() or lines[k].lstrip().startswith("#")):
            k += 1
        if k == len(lines) or not lines[k][:1].isspace():
            return j
    return len(lines) - 1
