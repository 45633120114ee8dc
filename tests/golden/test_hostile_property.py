"""Property: a hostile value in any field that reaches a rendered file is either refused
by `halb validate` (exit 2, messages only) or rendered so every file has the same lines
as with a plain value (same directives, same words, nothing extra), and the daemons'
own validators accept the result."""

from __future__ import annotations

import copy
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from halb.checkconf import check_host_root
from halb.cli import app
from halb.outdir import write_rendered
from halb.render import HostFiles, render_cluster
from halb.spec import load_cluster

pytestmark = [
    pytest.mark.skipif(
        shutil.which("haproxy") is None or shutil.which("keepalived") is None or os.geteuid() != 0,
        reason="needs haproxy, keepalived and root (keepalived -t runs in a private netns)",
    ),
    pytest.mark.slow,
]

runner = CliRunner()

HOSTS = {"lb1": "10.0.0.11", "lb2": "10.0.0.12", "m1": "10.0.0.21", "m2": "10.0.0.22"}
HOSTS |= {"n1": "10.0.0.31"}
BASE: dict[str, Any] = {
    "cluster": "t",
    "inventory": "hosts.yml",
    "vips": {
        "internal": {"address": "10.0.0.250", "interface": "eth0"},
        "external": {"address": "10.0.0.251", "interface": "eth0"},
    },
    "frontends": {
        "apiserver": {"port": 6443, "backends": "kube-master", "backend_port": 6443},
        "web": {
            "vip": "external",
            "port": 30880,
            "backends": "k8s-cluster",
            "backend_port": 30880,
            "mode": "http",
            "check": "http",
        },
    },
    "vrrp": {"auth": {"password": "s3cret"}},
    "health": {"inter": "2s", "fall": 3, "rise": 2},
}

# Pieces a hostile user would reach for: line and word ends, shell, config comments,
# quotes, braces, path parts, odd Unicode. "[" is left out of host names only, where it is
# Ansible's range syntax (tested apart).
PIECES = [
    "\n", "\r", "\x00", " ", "\t", "#", "!", ";", "$(touch PWNED)", "`id`", "${IFS}",
    "'", '"', "{", "}", "\\", "/", "..", ":", "%", "@", "é", "\u2028", "\x85", "*", "&",
    "|", "<", ">", "-", "_", ".", "=", "[", "]", "0", "10.0.0.99", "eth0", "2s", "\x1b[31m",
]  # fmt: skip


def hostile(exclude: str = "") -> st.SearchStrategy[str]:
    pieces = [p for p in PIECES if not any(c in p for c in exclude)]
    words = st.one_of(st.sampled_from(pieces), st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True))
    joined = st.lists(words, min_size=1, max_size=6).map("".join)
    return st.one_of(joined, st.text(max_size=40), st.just("a" * 300), st.just("x" * 64))


NUMBERS: st.SearchStrategy[Any] = st.one_of(
    st.integers(-(2**40), 2**40),
    st.integers(0, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.lists(st.integers(0, 9), max_size=2),
)

Case = tuple[dict[str, str], dict[str, Any]]  # host name -> ip, spec


def _set(path: str) -> Callable[[Case, Any], Case]:
    def apply(case: Case, value: Any) -> Case:
        hosts, spec = case
        d = spec
        keys = path.split(".")
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
        return hosts, spec

    return apply


def _rename(host: str) -> Callable[[Case, Any], Case]:
    def apply(case: Case, value: Any) -> Case:
        hosts, spec = case
        return {value if n == host else n: ip for n, ip in hosts.items()}, spec

    return apply


def _ip(host: str) -> Callable[[Case, Any], Case]:
    def apply(case: Case, value: Any) -> Case:
        hosts, spec = case
        return {**hosts, host: value}, spec

    return apply


def _frontend_name(case: Case, value: Any) -> Case:
    hosts, spec = case
    fes = spec["frontends"]
    spec["frontends"] = {"apiserver": fes["apiserver"], value: fes["web"]}
    return hosts, spec


def _priority(case: Case, value: Any) -> Case:
    hosts, spec = case
    spec["vips"]["internal"]["priorities"] = {"lb1": 150, "lb2": value}
    return hosts, spec


FIELDS: dict[str, tuple[Callable[[Case, Any], Case], st.SearchStrategy[Any]]] = {
    "cluster": (_set("cluster"), hostile()),
    "lb host name": (_rename("lb2"), hostile(exclude="[")),
    "backend host name": (_rename("m1"), hostile(exclude="[")),
    "lb host ip": (_ip("lb2"), hostile()),
    "backend host ip": (_ip("m1"), hostile()),
    "vip address": (_set("vips.internal.address"), hostile()),
    "interface": (_set("vips.internal.interface"), hostile()),
    "frontend name": (_frontend_name, hostile()),
    "health.inter": (_set("health.inter"), hostile()),
    "password": (_set("vrrp.auth.password"), hostile()),
    "port": (_set("frontends.apiserver.port"), NUMBERS),
    "backend_port": (_set("frontends.web.backend_port"), NUMBERS),
    "router_id": (_set("vips.internal.router_id"), NUMBERS),
    "priority": (_priority, NUMBERS),
    "advert_int": (_set("vrrp.advert_int"), NUMBERS),
    "fall": (_set("health.fall"), NUMBERS),
}


def write_case(d: Path, case: Case) -> Path:
    hosts, spec = case
    names = list(hosts)
    lb, masters, nodes = names[:2], names[2:4], names[4:]
    inv = {
        "all": {
            "hosts": {n: {"ansible_host": ip, "ip": ip} for n, ip in hosts.items()},
            "children": {
                "lb": {"hosts": dict.fromkeys(lb)},
                "kube-master": {"hosts": dict.fromkeys(masters)},
                "kube-node": {"hosts": dict.fromkeys(nodes)},
                "k8s-cluster": {"children": {"kube-master": None, "kube-node": None}},
            },
        }
    }
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts.yml").write_text(yaml.safe_dump(inv, sort_keys=False))
    (d / "halb.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return d / "halb.yaml"


def _is_address(word: str) -> bool:
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return False
    return True


def shape(files: HostFiles) -> dict[str, list[tuple[str, int]]]:
    """Per file: each line's first word and word count (comments: the '#' only).

    The VIP's `label IF:halbN` is left out: it is dropped when a long interface name would
    make it longer than the kernel's 15 bytes, which changes no directive.
    """
    out = {}
    for path, f in files.items():
        lines = []
        for ln in f.content.split("\n"):
            words = ln.split()
            if "label" in words:
                i = words.index("label")
                del words[i : i + 2]
            if words and words[0].startswith("#"):
                lines.append(("#", 0))
            elif words and _is_address(words[0]):  # a unicast_peer line: any address
                lines.append(("<address>", len(words)))
            else:
                lines.append((words[0] if words else "", len(words)))
        out[path] = lines
    return out


def plain_render(tmp: Path) -> list[dict[str, list[tuple[str, int]]]]:
    cfg = write_case(tmp / "plain", (dict(HOSTS), copy.deepcopy(BASE)))
    return [shape(files) for files in render_cluster(load_cluster(cfg)).values()]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@pytest.mark.parametrize("field", list(FIELDS))
@given(data=st.data())
def test_hostile_value_is_refused_or_rendered_as_plain(
    field: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    apply, strategy = FIELDS[field]
    value = data.draw(strategy, label=field)
    d = tmp_path_factory.mktemp("hostile")
    cfg = write_case(d, apply((dict(HOSTS), copy.deepcopy(BASE)), value))
    r = runner.invoke(app, ["validate", "-c", str(cfg)])
    assert r.exit_code in (0, 2), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code == 2:
        errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
        assert errors, r.output
        assert all(len(ln) < 600 for ln in r.output.splitlines()), r.output
        return
    rendered = render_cluster(load_cluster(cfg))
    assert [shape(f) for f in rendered.values()] == plain_render(d)
    write_rendered(rendered, d / "out")
    for host in rendered:
        for res in check_host_root(host, d / "out" / host):
            assert res.ok, f"{res.tool}: {res.output}"
        for script in (d / "out" / host / "etc/keepalived/halb").iterdir():
            p = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
