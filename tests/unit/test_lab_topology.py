"""The lab's address plan and the files it writes (pure; no root, no namespaces)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from halb.cli.common import app
from halb.errors import InputError
from halb.inventory import load_inventory
from halb.lab import fakeapi, plan, writer
from halb.lab.topology import LabRole, lab_of_netns, octet_of
from halb.spec import check


def test_octet_is_stable_and_in_range() -> None:
    assert octet_of("halb") == octet_of("halb")
    octets = {octet_of(f"lab{i}") for i in range(300)}
    assert octets <= set(range(1, 255))
    assert len(octets) > 150  # spread out, so different names rarely share a range


def test_default_plan_addresses_and_names() -> None:
    p = plan("demo")
    x = octet_of("demo")
    assert p.subnet == f"10.250.{x}.0/24"
    assert [(h.name, h.address) for h in p.hosts] == [
        ("taskbox", f"10.250.{x}.2"),
        ("lb1", f"10.250.{x}.11"),
        ("lb2", f"10.250.{x}.12"),
        ("master1", f"10.250.{x}.21"),
        ("master2", f"10.250.{x}.22"),
        ("master3", f"10.250.{x}.23"),
        ("node1", f"10.250.{x}.31"),
        ("node2", f"10.250.{x}.32"),
        ("node3", f"10.250.{x}.33"),
    ]
    assert (p.vip_internal, p.vip_external) == (f"10.250.{x}.253", f"10.250.{x}.254")
    assert {h.address for h in p.hosts}.isdisjoint({p.vip_internal, p.vip_external})
    assert [h.netns for h in p.hosts][:2] == ["halb-demo-taskbox", "halb-demo-lb1"]
    assert p.switch_netns == "halb-demo-sw"
    assert [h.name for h in p.hosts if h.password] == ["lb2", "node1"]
    assert [(h.name, h.sudo_user) for h in p.hosts if h.sudo_user] == [("lb1", "halbops")]
    assert p.inventory_hosts[0].name == "lb1"


def test_netns_names_parse_back() -> None:
    p = plan("ab1", lbs=1, masters=1, nodes=1)
    for h in p.hosts:
        assert lab_of_netns(h.netns) == ("ab1", h.name)
    assert lab_of_netns("halb-txdev") is None
    assert lab_of_netns("other-ab1-lb1") is None


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"name": "Bad-Name"}, "lab name 'Bad-Name'"),
        ({"name": "x" * 13}, "lab name"),
        ({"lbs": -1}, "--lbs -1"),
        ({"masters": 10}, "--masters 10"),
        ({"nodes": -1}, "--nodes -1"),
        ({"octet": 255}, "octet 255"),
        ({"password_hosts": frozenset({"lb7"})}, "password hosts not in the lab: lb7"),
        ({"sudo_hosts": frozenset({"node9"})}, "sudo hosts not in the lab: node9"),
        (
            {"password_hosts": frozenset({"lb2"}), "sudo_hosts": frozenset({"lb2"})},
            "both root-password and sudo hosts: lb2",
        ),
    ],
)
def test_bad_plans_say_what_is_wrong(kw: dict[str, object], msg: str) -> None:
    args: dict[str, object] = {"name": "ok"} | kw
    with pytest.raises(InputError, match=msg):
        plan(**args)  # type: ignore[arg-type]


def test_small_lab_has_no_password_lb() -> None:
    p = plan("s", lbs=1, masters=1, nodes=0)
    assert [h.name for h in p.hosts] == ["taskbox", "lb1", "master1"]
    assert not [h for h in p.hosts if h.password]
    assert p.by_role(LabRole.NODE) == ()


def test_hosts_ini_reads_as_the_kubesphere_inventory(tmp_path: Path) -> None:
    p = plan("demo")
    text = writer.hosts_ini(p, tmp_path, "s3cret-pw", "sud0-pw")
    (tmp_path / "hosts.ini").write_text(text)
    inv = load_inventory(tmp_path / "hosts.ini")
    assert list(inv.hosts) == ["lb1", "lb2", "master1", "master2", "master3",
                               "node1", "node2", "node3"]  # fmt: skip

    def names(group: str) -> list[str]:
        return [h.name for h in inv.group_hosts(group)]

    assert names("lb") == ["lb1", "lb2"]
    assert names("kube-master") == names("etcd") == ["master1", "master2", "master3"]
    assert names("k8s-cluster") == ["master1", "master2", "master3", "node1", "node2", "node3"]
    lb2, lb1, m1 = inv.hosts["lb2"], inv.hosts["lb1"], inv.hosts["master1"]
    assert lb2.password == "s3cret-pw" and m1.password is None
    assert (lb2.user, lb2.become_password) == ("root", None)
    # lb1: its own user by password, root through sudo with the same password
    assert (lb1.user, lb1.password, lb1.become_password) == ("halbops", "sud0-pw", "sud0-pw")
    assert m1.ip == m1.ssh_address == p.host("master1").address
    assert m1.user == "root"
    for h in (lb1, m1):
        assert h.private_key_file == str(tmp_path / "id_ed25519")
        assert h.ssh_common_args == (
            f"-o UserKnownHostsFile={tmp_path / 'known_hosts'} -o StrictHostKeyChecking=yes"
        )
        assert h.vars["halb_service_manager"] == "supervisor"
    assert "taskbox" not in text
    assert text.count("s3cret-pw") == 2  # lb2 and node1 only
    assert text.count("sud0-pw") == 2  # lb1's login and sudo


def test_halb_yaml_is_the_documented_spec_and_validates(tmp_path: Path) -> None:
    p = plan("demo")
    text = writer.halb_yaml(p)
    assert text.startswith('# halb cluster spec for the lab "demo"')
    data = yaml.safe_load(text)
    assert data["cluster"] == "halb-lab-demo"
    assert data["vips"]["internal"] == {"address": p.vip_internal, "interface": "eth0"}
    assert data["vips"]["external"] == {"address": p.vip_external, "interface": "eth0"}
    assert data["frontends"]["console"]["backends"] == "k8s-cluster"
    assert "command" not in data["installer"]  # the stand-in, launched as the real one
    (tmp_path / "halb.yaml").write_text(text)
    (tmp_path / "hosts.ini").write_text(writer.hosts_ini(p, tmp_path, "pw", "spw"))
    cluster, findings = check(tmp_path / "halb.yaml")
    assert cluster is not None, findings
    assert not [f for f in findings if f.level == "error"]


def test_common_yaml_is_yaml_with_the_lb_comments() -> None:
    data = yaml.safe_load(writer.COMMON_YAML)
    assert data["console_port"] == 30880
    assert "# loadbalancer_apiserver:" in writer.COMMON_YAML


def test_sshd_config_per_host() -> None:
    p = plan("demo")
    lb1, lb2 = writer.sshd_config(p.host("lb1")), writer.sshd_config(p.host("lb2"))
    m1 = writer.sshd_config(p.host("master1"))
    assert f"ListenAddress {p.host('lb1').address}\n" in lb1
    assert "UsePAM no\n" in lb1 and "PermitRootLogin yes\n" in lb1
    assert "PasswordAuthentication no\n" in m1
    assert "PasswordAuthentication yes\n" in lb2
    assert "PasswordAuthentication yes\n" in lb1  # halbops logs in by password
    assert "AllowUsers" not in lb1 and "DenyUsers" not in lb1


def test_shadow_copy_replaces_only_roots_password() -> None:
    shadow = "root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n"
    out = writer.shadow_with_root_hash(shadow, "$6$salt$hash")
    assert out == "root:$6$salt$hash:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n"
    assert writer.shadow_with_root_hash("daemon:*:1::::::\n", "*").startswith("root:*:")


def test_sudo_user_files() -> None:
    passwd = "root:x:0:0:root:/root:/bin/bash\ncloud:x:2000:2000::/home/cloud:/bin/sh\n"
    group = "root:x:0:\nstaff:x:2001:\n"
    uid = writer.free_id(passwd, group)
    assert uid == 2002
    out = writer.passwd_with_user(passwd, "halbops", uid, "/home/halbops")
    assert out.splitlines()[:2] == passwd.splitlines()
    assert out.splitlines()[2] == "halbops:x:2002:2002:halb lab operator:/home/halbops:/bin/sh"
    # an existing entry is replaced, not duplicated
    assert writer.passwd_with_user(out, "halbops", uid, "/h").count("halbops:") == 1
    assert writer.group_with_user(group, "halbops", uid).endswith("\nhalbops:x:2002:\n")
    shadow = writer.shadow_with_user("root:*:1:0:99999:7:::\n", "halbops", "$6$s$h")
    assert shadow == "root:*:1:0:99999:7:::\nhalbops:$6$s$h:19000:0:99999:7:::\n"
    drop_in = writer.sudoers_drop_in(plan("demo").host("lb1"))
    rules = [ln for ln in drop_in.splitlines() if ln and not ln.startswith("#")]
    assert rules == ["halbops ALL=(ALL:ALL) ALL"]  # a password every time, no NOPASSWD


def test_known_hosts_lists_name_and_address() -> None:
    p = plan("k", lbs=1, masters=1, nodes=0)
    keys = {"lb1": "ssh-ed25519 AAAA1 lb1\n", "master1": "ssh-ed25519 AAAA2 master1\n"}
    assert writer.known_hosts(p, keys) == (
        f"lb1,{p.host('lb1').address} ssh-ed25519 AAAA1\n"
        f"master1,{p.host('master1').address} ssh-ed25519 AAAA2\n"
    )


def test_fakeapi_answers(tmp_path: Path) -> None:
    assert fakeapi.apiserver_answer("/readyz", tmp_path) == (200, "ok")
    (tmp_path / "readyz").write_text("500\n")
    assert fakeapi.apiserver_answer("/readyz?verbose", tmp_path)[0] == 500
    assert fakeapi.apiserver_answer("/livez", tmp_path) == (200, "ok")
    (tmp_path / "livez").write_text("401")
    assert fakeapi.apiserver_answer("/livez", tmp_path)[0] == 401
    assert fakeapi.apiserver_answer("/api", tmp_path)[0] == 404
    assert fakeapi.console_answer("node2", tmp_path) == (200, "console node2\n")
    raw = fakeapi.response(200, "ok")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nok")


def test_console_keeps_the_connection_only_when_asked_and_allowed(tmp_path: Path) -> None:
    """A real server on loopback: two requests on one connection with --keep-alive, the
    second asking to close; without --keep-alive the first answer closes."""

    async def exchange(keep_alive: bool) -> list[bytes]:
        handler = fakeapi.make_handler("console", "node1", tmp_path, keep_alive)
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for extra in ("", "Connection: close\r\n"):
            writer.write(f"GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            answers.append(head + await reader.readexactly(len("console node1\n")))
            if b"Connection: close" in head:
                break
        rest = await asyncio.wait_for(reader.read(), timeout=5)  # closed by the server
        writer.close()
        server.close()
        return [*answers, rest]

    kept = asyncio.run(exchange(True))
    assert len(kept) == 3 and b"Connection: keep-alive" in kept[0]
    assert b"Connection: close" in kept[1] and kept[2] == b""
    closed = asyncio.run(exchange(False))
    assert len(closed) == 2 and b"Connection: close" in closed[0] and closed[1] == b""


def test_lab_commands_need_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("halb.lab.netns.os.geteuid", lambda: 1000)
    runner = CliRunner()
    for args in (["lab", "up"], ["lab", "down"], ["lab", "status"], ["lab", "exec", "--", "true"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "halb lab needs root" in r.output


def test_the_stand_ins_control_dir_is_the_one_halb_names() -> None:
    """fakeapi.py runs as a plain script on systemd hosts, so it keeps its own copy."""
    from halb.lab.model import CONTROL_DIR
    from halb.paths import LAB_CONTROL_DIR

    assert str(fakeapi.DEFAULT_CONTROL_DIR) == LAB_CONTROL_DIR == "/" + CONTROL_DIR


def test_colocated_plan_has_no_lb_hosts_and_no_lb_group(tmp_path: Path) -> None:
    from halb.lab.writer import hosts_ini

    p = plan("six", lbs=0, masters=3, nodes=3)
    assert p.colocated and not p.by_role(LabRole.LB)
    assert [h.name for h in p.inventory_hosts] == [
        "master1", "master2", "master3", "node1", "node2", "node3",
    ]  # fmt: skip
    ini = hosts_ini(p, tmp_path, "pw", "spw")
    assert "[lb]" not in ini and "[kube-master]\nmaster1\nmaster2\nmaster3\n" in ini
    assert not plan("x", lbs=2).colocated
