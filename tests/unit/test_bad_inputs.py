"""Each offline bad input from the reliability notes: exit 2 and one message naming the
file and key or host; warnings print and exit 0."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from halb.cli import app
from halb.errors import SpecError
from halb.outdir import write_rendered
from halb.render import KEEPALIVED_CONF, RenderedFile, check_peers_agree, render_cluster
from halb.spec import load_cluster

INVENTORY = """\
[all]
lb1 ansible_host=10.0.0.11 ip=10.0.0.11
lb2 ansible_host=10.0.0.12 ip=10.0.0.12
m1 ansible_host=10.0.0.21 ip=10.0.0.21
m2 ansible_host=10.0.0.22 ip=10.0.0.22
m3 ansible_host=10.0.0.23 ip=10.0.0.23
n1 ansible_host=10.0.0.31 ip=10.0.0.31

[lb]
lb1
lb2

[kube-master]
m[1:3]

[kube-node]
n1

[etcd]
m[1:3]

[k8s-cluster:children]
kube-master
kube-node
"""

BASE: dict[str, Any] = {
    "cluster": "t",
    "inventory": "hosts.ini",
    "vips": {"internal": {"address": "10.0.0.250", "interface": "eth0"}},
}

runner = CliRunner()


def run_validate(
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    inventory: str | bytes = INVENTORY,
    raw_spec: str | None = None,
) -> tuple[int, str]:
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    if mutate:
        mutate(spec)
    inv = tmp_path / "hosts.ini"
    if isinstance(inventory, bytes):
        inv.write_bytes(inventory)
    else:
        inv.write_text(inventory)
    (tmp_path / "halb.yaml").write_text(raw_spec if raw_spec is not None else yaml.safe_dump(spec))
    r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml")])
    return r.exit_code, r.output


def vip(**kw: Any) -> Callable[[dict[str, Any]], None]:
    def m(s: dict[str, Any]) -> None:
        s["vips"]["internal"].update(kw)

    return m


def vrrp(**kw: Any) -> Callable[[dict[str, Any]], None]:
    def m(s: dict[str, Any]) -> None:
        s.setdefault("vrrp", {}).update(kw)

    return m


def test_valid_base_passes(tmp_path: Path) -> None:
    code, out = run_validate(tmp_path)
    assert code == 0, out
    assert "ok: 2 LB host(s)" in out


ERRORS = [
    ("router-id-0", vip(router_id=0), "vips.internal.router_id", "must be 1..255"),
    ("router-id-256", vip(router_id=256), "vips.internal.router_id", "must be 1..255"),
    ("router-id-nan", vip(router_id="abc"), "vips.internal.router_id", "valid integer"),
    (
        "vip-outside-subnet",
        vip(subnet="10.0.1.0/24"),
        "vips.internal.address",
        "outside vips.internal.subnet 10.0.1.0/24",
    ),
    ("vip-is-host", vip(address="10.0.0.21"), "vips.internal.address", "address of host m1"),
    (
        "subsecond-v2",
        vrrp(profile="default", advert_int=0.5),
        "vrrp.advert_int",
        "VRRPv2 adverts are whole seconds",
    ),
    (
        "pass-with-v3",
        vrrp(profile="fast", auth={"password": "abc"}),
        "vrrp.auth",
        "VRRPv3 has no authentication",
    ),
    (
        "pass-too-long",
        vrrp(auth={"password": "123456789"}),
        "vrrp.auth.password",
        "longer than 8 characters",
    ),
    (
        "unknown-key",
        lambda s: s.update(vipz=s.pop("vips")),
        "vipz",
        "did you mean 'vips'",
    ),
    (
        "unknown-nested-key",
        vip(adress="10.0.0.250"),
        "vips.internal.adress",
        "did you mean 'address'",
    ),
    (
        "backend-group-missing",
        lambda s: s.update(
            frontends={
                "apiserver": {"port": 6443, "backends": "kube-masters", "backend_port": 6443}
            }
        ),
        "frontends.apiserver.backends",
        "group 'kube-masters' is not in hosts.ini; did you mean 'kube-master'",
    ),
    (
        "lb-host-unknown",
        lambda s: s.update(lb_hosts=["lb1", "lb3"]),
        "lb_hosts[1]",
        "host 'lb3' is not in hosts.ini",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_bad_spec(tmp_path: Path, mutate: Any, key: str, message: str) -> None:
    code, out = run_validate(tmp_path, mutate)
    assert code == 2, out
    assert f"halb.yaml: {key}" in out
    assert message in out
    assert "Traceback" not in out


def test_empty_backend_group(tmp_path: Path) -> None:
    inv = INVENTORY.replace("n1\n\n[etcd]", "\n[etcd]")
    spec = {
        "frontends": {
            "console": {
                "vip": "internal",
                "port": 30880,
                "backends": "kube-node",
                "backend_port": 30880,
            }
        }
    }
    code, out = run_validate(tmp_path, lambda s: s.update(spec), inventory=inv)
    assert code == 2, out
    assert "frontends.console.backends: group 'kube-node' in hosts.ini has no hosts" in out


def test_colocated_apiserver_keeps_6443_through_the_redirect(tmp_path: Path) -> None:
    inv = INVENTORY.replace("[lb]\nlb1\nlb2\n", "[lb]\n")
    code, out = run_validate(tmp_path, inventory=inv)
    assert code == 0, out
    assert "note: halb.yaml: frontends.apiserver: " in out
    assert "clients keep 10.0.0.250:6443; HAProxy listens on 10.0.0.250:9445" in out
    assert "set frontends.apiserver.port to another port" in out


def test_listen_port_equal_to_the_public_port_refused(tmp_path: Path) -> None:
    inv = INVENTORY.replace("[lb]\nlb1\nlb2\n", "[lb]\n")
    fe = {"apiserver": {"port": 6443, "backends": "kube-master", "backend_port": 6443,
                        "listen_port": 6443}}  # fmt: skip
    code, out = run_validate(tmp_path, lambda s: s.update(frontends=fe), inventory=inv)
    assert code == 2, out
    assert "halb.yaml: frontends.apiserver.listen_port: 6443 is the frontend's own port" in out


def test_colocated_with_8443_and_other_console_port_passes(tmp_path: Path) -> None:
    inv = INVENTORY.replace("[lb]\nlb1\nlb2\n", "[lb]\n")
    fe = {
        "apiserver": {"port": 8443, "backends": "kube-master", "backend_port": 6443},
        "console": {"port": 8880, "backends": "k8s-cluster", "backend_port": 30880},
    }
    code, out = run_validate(tmp_path, lambda s: s.update(frontends=fe), inventory=inv)
    assert code == 0, out


def test_colocated_with_host_bind_passes_apiserver(tmp_path: Path) -> None:
    inv = INVENTORY.replace("[lb]\nlb1\nlb2\n", "[lb]\n")
    fe = {
        "apiserver": {"port": 6443, "backends": "kube-master", "backend_port": 6443},
        "console": {"port": 8880, "backends": "k8s-cluster", "backend_port": 30880},
    }

    def m(s: dict[str, Any]) -> None:
        s.update(frontends=fe, installer={"apiserver_bind": "host"})

    code, out = run_validate(tmp_path, m, inventory=inv)
    assert code == 0, out


def test_two_hosts_same_ip(tmp_path: Path) -> None:
    inv = INVENTORY.replace("n1 ansible_host=10.0.0.31 ip=10.0.0.31", "n1 ip=10.0.0.22")
    code, out = run_validate(tmp_path, inventory=inv)
    assert code == 2, out
    assert "hosts.ini: host n1: ip 10.0.0.22 is also the address of host m2" in out


def test_host_defined_twice_with_different_addresses(tmp_path: Path) -> None:
    inv = INVENTORY + "\n[extra]\nn1 ansible_host=10.0.0.99 ip=10.0.0.99\n"
    code, out = run_validate(tmp_path, inventory=inv)
    assert code == 2, out
    assert "hosts.ini" in out and "n1" in out
    assert "10.0.0.31" in out and "10.0.0.99" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        (b"\x00\x01\x02binary\x00", "binary"),
    ],
    ids=["empty", "binary"],
)
def test_bad_inventory(tmp_path: Path, content: str | bytes, message: str) -> None:
    code, out = run_validate(tmp_path, inventory=content)
    assert code == 2, out
    assert "hosts.ini" in out
    assert message in out.lower()


def test_unreadable_inventory(tmp_path: Path) -> None:
    code, out = run_validate(tmp_path, lambda s: s.update(inventory="missing.ini"))
    assert code == 2, out
    assert "missing.ini" in out


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("just a string\n", "expected a mapping"),
        ("", "got empty"),
        ("cluster: [unclosed\n", "invalid YAML (line"),
    ],
    ids=["list", "scalar", "empty", "syntax"],
)
def test_spec_not_a_mapping(tmp_path: Path, raw: str, message: str) -> None:
    code, out = run_validate(tmp_path, raw_spec=raw)
    assert code == 2, out
    assert "halb.yaml" in out and message in out


def test_missing_spec_file_says_how_to_make_one(tmp_path: Path) -> None:
    r = runner.invoke(app, ["validate", "-c", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2
    assert "nope.yaml: not found" in r.output and "halb init" in r.output


def test_warnings_exit_zero(tmp_path: Path) -> None:
    inv = INVENTORY.replace("[lb]\nlb1\nlb2\n", "[lb]\nlb1\n").replace(
        "[etcd]\nm[1:3]", "[etcd]\nm[1:2]"
    )
    code, out = run_validate(tmp_path, inventory=inv)
    assert code == 0, out
    assert "warning: halb.yaml: lb_hosts: one LB host (lb1): the VIP has no failover" in out
    assert "warning: hosts.ini: group etcd: 2 etcd member(s) tolerate 0 failure(s)" in out
    assert "3/1" in out  # the failure-tolerance table


def test_validate_json_lists_findings(tmp_path: Path) -> None:
    run_validate(tmp_path, vip(router_id=0))
    r = runner.invoke(app, ["validate", "--json", "-c", str(tmp_path / "halb.yaml")])
    assert r.exit_code == 2
    import json

    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert {
        "level": "error",
        "where": "halb.yaml: vips.internal.router_id",
        "message": "must be 1..255 (got 0)",
    } in doc["findings"]


def test_password_never_echoed(tmp_path: Path) -> None:
    code, out = run_validate(tmp_path, vrrp(auth={"password": "S3cr3tLongPw"}))
    assert code == 2
    assert "S3cr3tLongPw" not in out


def test_peers_with_different_router_ids_refused() -> None:
    conf = (
        "vrrp_instance halb_internal {{\n    virtual_router_id {rid}\n    priority {p}\n"
        "    advert_int 1\n    virtual_ipaddress {{\n        10.0.0.250 dev eth0\n    }}\n}}\n"
    )
    rendered = {
        "lb1": {KEEPALIVED_CONF: RenderedFile(conf.format(rid=51, p=150), 0o600)},
        "lb2": {KEEPALIVED_CONF: RenderedFile(conf.format(rid=52, p=100), 0o600)},
    }
    with pytest.raises(SpecError, match="lb2 and lb1 disagree on halb_internal"):
        check_peers_agree(rendered)
    rendered["lb2"] = {KEEPALIVED_CONF: RenderedFile(conf.format(rid=51, p=150), 0o600)}
    with pytest.raises(SpecError, match="share priority 150"):
        check_peers_agree(rendered)


def test_unknown_key_inside_a_frontend_names_the_nearest(tmp_path: Path) -> None:
    fe = {"apiserver": {"port": 6443, "backends": "kube-master", "backend_prot": 6443}}
    code, out = run_validate(tmp_path, lambda s: s.update(frontends=fe))
    assert code == 2, out
    assert (
        "halb.yaml: frontends.apiserver.backend_prot: unknown key; did you mean 'backend_port'"
        in out
    )


# --------------------------------------------------------------------------- hostile input


def fe(name: str = "apiserver", **kw: Any) -> Callable[[dict[str, Any]], None]:
    def m(s: dict[str, Any]) -> None:
        s["frontends"] = {
            name: {"port": 6443, "backends": "kube-master", "backend_port": 6443} | kw
        }

    return m


def health(**kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: s.update(health=kw)


HOSTILE_SPEC = [
    ("advert-inf", vrrp(advert_int=float("inf")), "vrrp.advert_int", "finite"),
    ("advert-nan", vrrp(advert_int=float("nan")), "vrrp.advert_int", "finite"),
    ("advert-bool", vrrp(advert_int=True), "vrrp.advert_int", "valid number"),
    ("hold-negative", vrrp(failback_hold=-1), "vrrp.failback_hold", "whole milliseconds"),
    ("hold-text", vrrp(failback_hold="3s"), "vrrp.failback_hold", "valid number"),
    ("grace-zero", vrrp(failback_grace=0), "vrrp.failback_grace", "greater than or equal to 1"),
    ("grace-long", vrrp(failback_grace=61), "vrrp.failback_grace", "less than or equal to 60"),
    ("port-true", fe(port=True), "frontends.apiserver.port", "valid integer (got True)"),
    ("port-text", fe(port="6443"), "frontends.apiserver.port", "valid integer"),
    ("router-id-true", vip(router_id=True), "vips.internal.router_id", "valid integer"),
    ("version-true", vrrp(version=True), "vrrp.version", "whole number"),
    (
        "priority-bool",
        vip(priorities={"lb1": True, "lb2": 100}),
        "vips.internal.priorities.lb1",
        "valid integer",
    ),
    (
        "priority-span",
        vip(priorities={"lb1": 254, "lb2": 1}),
        "vips",
        "keep the span <= 243",
    ),
    ("fall-text", health(fall="3"), "health.fall", "valid integer"),
    ("unicast-text", vrrp(unicast="yes"), "vrrp.unicast", "valid boolean"),
    ("vip-broadcast-all", vip(address="255.255.255.255"), "vips.internal.address", "cannot"),
    ("vip-zero", vip(address="0.0.0.0"), "vips.internal.address", "cannot be a VIP"),
    ("vip-int", vip(address=167772410), "vips.internal.address", "IPv4 address as a string"),
    (
        "vip-network",
        vip(address="10.0.0.0", subnet="10.0.0.0/24"),
        "vips.internal.address",
        "network address of 10.0.0.0/24",
    ),
    (
        "vip-broadcast",
        vip(address="10.0.0.255", subnet="10.0.0.0/24"),
        "vips.internal.address",
        "broadcast address of 10.0.0.0/24",
    ),
    ("lb-hosts-twice", lambda s: s.update(lb_hosts=["lb1", "lb1"]), "lb_hosts[1]", "already"),
    (
        "inter-newline",
        health(inter="2s\n    server x 10.9.9.9:1"),
        "health.inter",
        "not an HAProxy duration",
    ),
    ("inter-space", health(inter="2 s"), "health.inter", "not an HAProxy duration"),
    ("inter-zero", health(inter="0"), "health.inter", "out of range"),
    ("inter-huge", health(inter="30d"), "health.inter", "out of range"),
    ("iface-newline", vip(interface="eth0\nx"), "vips.internal.interface", "not a valid name"),
    ("iface-hash", vip(interface="eth#0"), "vips.internal.interface", "not a valid name"),
    ("iface-long", vip(interface="a" * 16), "vips.internal.interface", "15"),
    ("iface-slash", vip(interface="eth/0"), "vips.internal.interface", "not a valid name"),
    ("frontend-newline", fe("api\nlog x"), "frontends.'api\\nlog x'", "not valid"),
    ("frontend-reserved", fe("stats"), "frontends.stats", "taken by halb's own stats"),
    ("frontend-space", fe("api server"), "frontends.api server", "not valid"),
    ("cluster-newline", lambda s: s.update(cluster="a\nb"), "cluster", "not valid"),
    ("cluster-shell", lambda s: s.update(cluster="$(id)"), "cluster", "not valid"),
    ("domain-space", lambda s: s.update(installer={"domain": "a b"}), "installer.domain", "DNS"),
    ("password-newline", vrrp(auth={"password": "a\nb"}), "vrrp.auth.password", "letters"),
    ("password-dollar", vrrp(auth={"password": "a$b"}), "vrrp.auth.password", "letters"),
    ("inventory-nul", lambda s: s.update(inventory="a\x00b"), "inventory", "NUL"),
    (
        "priorities-key",
        vip(priorities={"lb1\n": 150, "lb2": 100}),
        "vips.internal.priorities",
        "not valid",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "message"),
    [e[1:] for e in HOSTILE_SPEC],
    ids=[e[0] for e in HOSTILE_SPEC],
)
def test_hostile_spec(tmp_path: Path, mutate: Any, key: str, message: str) -> None:
    code, out = run_validate(tmp_path, mutate)
    assert code == 2, out
    assert f"halb.yaml: {key}" in out
    assert message in out
    assert "Traceback" not in out


LB2 = "lb2 ansible_host=10.0.0.12 ip=10.0.0.12"
M1 = "m1 ansible_host=10.0.0.21 ip=10.0.0.21"

HOSTILE_INVENTORY = [
    ("lb-ip-newline", LB2, "lb2 ip='10.0.0.12\\nserver x'", "host lb2: ip"),
    ("lb-ip-cidr", LB2, "lb2 ip=10.0.0.12/24", "host lb2: ip '10.0.0.12/24'"),
    ("lb-ip-list", LB2, "lb2 ip=['10.0.0.12']", "host lb2: ip"),
    ("lb-ip-name", LB2, "lb2 ip=lb2.example.com", "not an IPv4 address"),
    ("backend-ip-words", M1, "m1 ip='10.0.0.21 backup'", "host m1: ip"),
    ("backend-ip-name", M1, "m1 ansible_host=m1.example.com", "host m1: ip"),
    ("lb-port-text", LB2, LB2 + " ansible_port=ssh", "ansible_port 'ssh'"),
    ("host-shell", "lb2 ", "lb2$(touch${IFS}PWNED) ", "hosts.ini:3: host name"),
    ("host-dotdot", "lb2 ", ".. ", "host name '..'"),
    ("host-long", "lb2 ", "l" * 300 + " ", "host name 'lll"),
    ("host-label-long", "lb2 ", "a" * 64 + " ", "labels of at most 63"),
]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [e[1:] for e in HOSTILE_INVENTORY],
    ids=[e[0] for e in HOSTILE_INVENTORY],
)
def test_hostile_inventory(tmp_path: Path, old: str, new: str, message: str) -> None:
    code, out = run_validate(tmp_path, inventory=INVENTORY.replace(old, new, 1))
    assert code == 2, out
    assert message in out
    assert "Traceback" not in out
    assert all(len(line) < 400 for line in out.splitlines()), out


def test_duplicate_key_names_key_and_line(tmp_path: Path) -> None:
    raw = yaml.safe_dump(BASE) + "cluster: other\n"
    code, out = run_validate(tmp_path, raw_spec=raw)
    assert code == 2, out
    assert "halb.yaml: invalid YAML (line 7): duplicate key 'cluster' (first on line 1)" in out


def test_advert_overflowing_float_is_refused(tmp_path: Path) -> None:
    code, out = run_validate(
        tmp_path, raw_spec=yaml.safe_dump(BASE) + "vrrp: {advert_int: 1.0e+309}\n"
    )
    assert code == 2 and "vrrp.advert_int" in out and "finite" in out, out


def test_huge_value_is_clipped_in_the_message(tmp_path: Path) -> None:
    code, out = run_validate(tmp_path, lambda s: s.update(cluster="x" * 100_000))
    assert code == 2
    assert max(len(line) for line in out.splitlines()) < 300, out
    assert "…" in out


def test_password_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "vrrp.pass").write_bytes(b"\xff\xfe\n")
    code, out = run_validate(tmp_path, vrrp(auth={"password_file": "vrrp.pass"}))
    assert code == 2, out
    assert "vrrp.auth.password_file" in out and "not UTF-8" in out


@pytest.mark.timeout(10)
@pytest.mark.parametrize("field", ["spec", "inventory", "password_file"])
def test_devices_and_fifos_are_refused_without_reading(tmp_path: Path, field: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in ("/dev/zero", str(fifo)):
        if field == "spec":
            r = runner.invoke(app, ["validate", "-c", target])
            code, out = r.exit_code, r.output
        elif field == "inventory":
            code, out = run_validate(tmp_path, lambda s, t=target: s.update(inventory=t))
        else:
            code, out = run_validate(tmp_path, vrrp(auth={"password_file": target}))
        assert code == 2, out
        assert "not a regular file" in out


def test_longest_valid_host_name_renders(tmp_path: Path) -> None:
    # 253 characters validate and render (the old code said ok, then crashed half-way).
    name = ".".join(["a" * 63] * 3) + "." + "b" * 61
    code, out = run_validate(tmp_path, inventory=INVENTORY.replace("lb2", name))
    assert code == 0, out
    out_dir = tmp_path / "out"
    write_rendered(render_cluster(load_cluster(tmp_path / "halb.yaml")), out_dir)
    assert (out_dir / name / "etc/haproxy/haproxy.cfg").is_file()
