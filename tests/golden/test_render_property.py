"""Property: every valid generated spec renders to files both daemons accept."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halb.checkconf import check_host_root
from halb.outdir import write_rendered
from halb.render import render_cluster
from halb.spec import load_cluster

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("keepalived") is None or os.geteuid() != 0,
    reason="needs haproxy, keepalived and root (keepalived -t runs in a private netns)",
)

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    n_lb = draw(st.integers(1, 4))
    n_master = draw(st.integers(1, 5))
    n_node = draw(st.integers(0, 4))
    colocated = draw(st.booleans())
    net = draw(st.integers(1, 250))
    lines = ["[all]"]
    hosts: dict[str, list[str]] = {"lb": [], "kube-master": [], "kube-node": []}
    k = 10
    for group, prefix, n in (("kube-master", "m", n_master), ("kube-node", "n", n_node)):
        for i in range(n):
            name = f"{prefix}{i + 1}"
            lines.append(f"{name} ansible_host=10.{net}.0.{k} ip=10.{net}.0.{k}")
            hosts[group].append(name)
            k += 1
    if colocated:
        hosts["lb"] = hosts["kube-master"][:n_lb]
    else:
        for i in range(n_lb):
            lines.append(f"lb{i + 1} ansible_host=10.{net}.0.{k} ip=10.{net}.0.{k}")
            hosts["lb"].append(f"lb{i + 1}")
            k += 1
    for group, members in hosts.items():
        lines += ["", f"[{group}]", *members]
    lines += [
        "",
        "[etcd]",
        *hosts["kube-master"],
        "",
        "[k8s-cluster:children]",
        "kube-master",
        "kube-node",
        "",
    ]
    profile = draw(st.sampled_from(["default", "fast"]))
    iface = draw(st.sampled_from(["eth0", "ens192", "bond0", "enp3s0f1"]))
    spec: dict[str, Any] = {
        "cluster": draw(names),
        "inventory": "hosts.ini",
        "vips": {"internal": {"address": f"10.{net}.0.250", "interface": iface}},
        "vrrp": {
            "profile": profile,
            "nopreempt": draw(st.booleans()),
            "unicast": draw(st.booleans()),
        },
        "health": {"fall": draw(st.integers(1, 5)), "rise": draw(st.integers(1, 5))},
    }
    if draw(st.booleans()):
        spec["vips"]["external"] = {"address": f"10.{net}.0.251", "interface": iface}
    if profile == "fast":
        spec["vrrp"]["advert_int"] = draw(st.sampled_from([0.05, 0.1, 0.25, 1.5]))
    elif draw(st.booleans()):
        spec["vrrp"]["auth"] = {
            "password": draw(st.from_regex(r"[A-Za-z0-9@%]{1,8}", fullmatch=True))
        }
    # co-located: separate ports, or the public ones behind halb's nftables redirect
    redirect = colocated and draw(st.booleans())
    api_port = (6443 if redirect else 8443) if colocated else draw(st.sampled_from([6443, 443]))
    spec["frontends"] = {
        "apiserver": {"port": api_port, "backends": "kube-master", "backend_port": 6443},
        "console": {
            "vip": "external",
            "port": 8880 if colocated and not redirect else 30880,
            "backends": "k8s-cluster",
            "backend_port": 30880,
        },
    }
    return "\n".join(lines), spec


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=clusters())
def test_generated_specs_render_valid_configs(
    case: tuple[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    inventory, spec = case
    d = tmp_path_factory.mktemp("prop")
    (d / "hosts.ini").write_text(inventory)
    (d / "halb.yaml").write_text(yaml.safe_dump(spec))
    cluster = load_cluster(d / "halb.yaml")
    rendered = render_cluster(cluster)
    write_rendered(rendered, d / "out")
    for host in rendered:
        for r in check_host_root(host, d / "out" / host):
            assert r.ok, f"{r.tool}: {r.output}"
