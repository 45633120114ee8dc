"""The Vagrant lab's pure part: `vagrant ssh-config` and `status --machine-readable` read,
the layout the Vagrantfile writes checked, hosts.ini and halb.yaml built (and accepted by
`halb validate` and `halb render --check`)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.cli import app
from halb.errors import InputError
from halb.inventory import load_inventory
from halb.lab import vagrant, vagrant_parse
from halb.lab.vagrant_parse import VagrantError
from halb.lab.writer import COMMON_YAML

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vagrant"
LAYOUT = (FIXTURES / "layout-default.json").read_bytes()
NAMES = ["lb1", "lb2", "master1", "master2", "master3", "node1", "node2", "node3"]
runner = CliRunner()


def ssh_block(name: str, port: int, key: str, *, blank: bool = True, rsa: bool = True) -> str:
    """One block as Vagrant's ssh_config template prints it (2.3: a blank line before
    IdentityFile, quotes around a path with a space, the ssh-rsa lines)."""
    ident = f'"{key}"' if " " in key else key
    return (
        f"Host {name}\n"
        "  HostName 127.0.0.1\n"
        "  User vagrant\n"
        f"  Port {port}\n"
        "  UserKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking no\n"
        "  PasswordAuthentication no\n" + ("\n" if blank else "") + f"  IdentityFile {ident}\n"
        "  IdentitiesOnly yes\n"
        "  LogLevel FATAL\n"
        + ("  PubkeyAcceptedKeyTypes +ssh-rsa\n  HostKeyAlgorithms +ssh-rsa\n" if rsa else "")
        + "\n"
    )


def ssh_config(vdir: str = "/home/op/halb/vagrant", names: list[str] = NAMES) -> str:
    return "".join(
        ssh_block(
            n, 2222 if i == 0 else 2199 + i, f"{vdir}/.vagrant/machines/{n}/virtualbox/private_key"
        )
        for i, n in enumerate(names)
    )


# --- ssh-config ------------------------------------------------------------------------


def test_ssh_config_real_format() -> None:
    got = vagrant_parse.parse_ssh_config(ssh_config())
    assert list(got) == NAMES
    lb1, node3 = got["lb1"], got["node3"]
    assert (lb1.hostname, lb1.port, lb1.user) == ("127.0.0.1", 2222, "vagrant")
    assert lb1.identity_file == "/home/op/halb/vagrant/.vagrant/machines/lb1/virtualbox/private_key"
    assert node3.port == 2206
    # Vagrant's "no host key checking" is not passed on; the key options are.
    assert lb1.options == (
        ("IdentitiesOnly", "yes"),
        ("PubkeyAcceptedKeyTypes", "+ssh-rsa"),
        ("HostKeyAlgorithms", "+ssh-rsa"),
    )


def test_ssh_config_older_template_and_odd_spellings() -> None:
    text = (
        ssh_block("default", 2200, "/a dir/with space/private_key", blank=False, rsa=False)
        + "Host other\n  hostname=192.168.121.40\n  user  vagrant\n  port 22\n"
        "  IdentityFile /k1\n  IdentityFile /k2\n  PreferredAuthentications publickey\n"
    )
    got = vagrant_parse.parse_ssh_config(text)
    assert got["default"].identity_file == "/a dir/with space/private_key"
    assert got["default"].options == (("IdentitiesOnly", "yes"),)
    assert (got["other"].hostname, got["other"].port) == ("192.168.121.40", 22)
    assert got["other"].identity_file == "/k1"  # ssh takes the first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  HostName 127.0.0.1\n", "HostName before any Host line"),
        ("Host lb1\n  HostName 127.0.0.1\n  User vagrant\n  IdentityFile /k\n", "lb1 has no Port"),
        ("Host lb1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n", "no IdentityFile"),
        (
            "Host lb1\n  HostName 1.2.3.4\n  User vagrant\n  Port 99999\n  IdentityFile /k\n",
            "Port '99999'",
        ),
        ("Host lb1\n  HostName 1.2.3.4\n  User x;rm\n  Port 22\n  IdentityFile /k\n", "User"),
        ("Host lb1\n  HostName a b\n  User v\n  Port 22\n  IdentityFile /k\n", "host name"),
        (
            "Host lb1\n  HostName 1.2.3.4\n  User v\n  Port 22\n  IdentityFile /k'x\n",
            "IdentityFile",
        ),
        ("Host lb1\n  Port\n", "not `Option value`"),
    ],
)
def test_ssh_config_errors_name_host_and_line(text: str, message: str) -> None:
    with pytest.raises(VagrantError, match="vagrant ssh-config") as e:
        vagrant_parse.parse_ssh_config(text)
    assert message in str(e.value)


# --- status --machine-readable --------------------------------------------------------

STATUS = "\n".join(
    [
        "1732680000,lb1,metadata,provider,virtualbox",
        "1732680000,lb1,provider-name,virtualbox",
        "1732680000,lb1,state,running",
        "1732680000,lb1,state-human-short,running",
        "1732680000,lb1,state-human-long,The VM is running. To stop this VM%!(VAGRANT_COMMA)"
        " you can run `vagrant halt` to\\nshut it down forcefully.",
        "1732680000,node1,metadata,provider,libvirt",
        "1732680000,node1,provider-name,libvirt",
        "1732680000,node1,state,not_created",
        "1732680000,node1,state-human-short,not created",
        "1732680000,node1,state-human-long,The environment has not yet been created.",
        "1732680000,,ui,info,Current machine states:\\n\\n"
        "lb1                       running (virtualbox)",
        "",
    ]
)


def test_status_machine_readable() -> None:
    got = vagrant_parse.parse_status(STATUS)
    assert [(v.name, v.provider, v.state, v.description) for v in got] == [
        ("lb1", "virtualbox", "running", "running"),
        ("node1", "libvirt", "not_created", "not created"),
    ]
    lines = vagrant_parse.machine_lines(STATUS)
    assert lines[4][2][0].startswith("The VM is running. To stop this VM, you can")
    assert "\n" in lines[4][2][0]


def test_error_text_from_machine_readable_and_stderr() -> None:
    mr = (
        "1732680000,,error-exit,Vagrant::Errors::NoDefaultProvider,"
        "No usable default provider could be found for your system.\\n\\nVagrant relies on"
    )
    assert (
        vagrant_parse.error_text(mr, "")
        == "No usable default provider could be found for your system."
    )
    err = (
        "/opt/vagrant/embedded/gems/x.rb:3: warning: already initialized constant X\n"
        "The provider 'libvirt' that was requested to back the machine\n"
        "'lb1' is reporting that it isn't usable on this system. The\n"
        "reason is shown below:\n\n"
        "Vagrant could not detect libvirt.\n\nMore text.\n"
    )
    assert vagrant_parse.error_text("", err) == (
        "The provider 'libvirt' that was requested to back the machine 'lb1' is reporting "
        "that it isn't usable on this system. The reason is shown below: "
        "Vagrant could not detect libvirt."
    )
    assert vagrant_parse.error_text("", "\n\n") == ""


# --- settings and layout ---------------------------------------------------------------


def test_env_settings_checked() -> None:
    env = {
        "HALB_VAGRANT_NET": "10.20.30",
        "HALB_VAGRANT_MEMORY": "1024",
        "HALB_VAGRANT_CPUS": "2",
        "HALB_VAGRANT_BOX": "generic/debian12",
        "HALB_VAGRANT_PROVIDER": "libvirt",
        "HALB_VAGRANT_LAYOUT": "/ignored",
        "PATH": "/bin",
    }
    assert vagrant.check_env(env) == {k: v for k, v in env.items() if k in vagrant.ENV_VARS}
    assert vagrant.check_env({"HALB_VAGRANT_NET": "  "}) == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HALB_VAGRANT_NET", "192.168.56.0"),
        ("HALB_VAGRANT_NET", "192.168.300"),
        ("HALB_VAGRANT_MEMORY", "128"),
        ("HALB_VAGRANT_MEMORY", "1g"),
        ("HALB_VAGRANT_CPUS", "0"),
        ("HALB_VAGRANT_PROVIDER", "VirtualBox; rm"),
        ("HALB_VAGRANT_BOX", "debian bookworm"),
    ],
)
def test_bad_env_setting_is_bad_input(key: str, value: str) -> None:
    with pytest.raises(InputError, match=f"^{key}="):
        vagrant.check_env({key: value})


def test_layout_of_the_default_vagrantfile() -> None:
    layout = vagrant.parse_layout(LAYOUT, Path("layout.json"))
    assert str(layout.network) == "192.168.56.0/24"
    assert (layout.vip_internal, layout.vip_external) == ("192.168.56.253", "192.168.56.254")
    assert layout.interface == "eth1"
    assert [(h.name, h.ip) for h in layout.by_role("lb")] == [
        ("lb1", "192.168.56.11"),
        ("lb2", "192.168.56.12"),
    ]
    assert len(layout.by_role("master")) == 3 and len(layout.by_role("node")) == 3


def _layout(**change: object) -> bytes:
    doc = json.loads(LAYOUT)
    doc.update(change)
    return json.dumps(doc).encode()


def _host(i: int, **change: object) -> list[dict[str, object]]:
    hosts: list[dict[str, object]] = json.loads(LAYOUT)["hosts"]
    hosts[i] = {**hosts[i], **change}
    return hosts


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not a JSON document"),
        (b"[]", "not a JSON object"),
        (_layout(halb_vagrant_layout=2), "halb_vagrant_layout is 2"),
        (_layout(network="192.168.56.1/24"), "host bits set"),
        (_layout(interface="eth1; reboot"), "interface"),
        (_layout(vips={"internal": "10.0.0.1", "external": "192.168.56.254"}), "vips.internal"),
        (
            _layout(vips={"internal": "192.168.56.11", "external": "192.168.56.254"}),
            "is the address of lb1",
        ),
        (
            _layout(vips={"internal": "192.168.56.255", "external": "192.168.56.254"}),
            "not a host address",
        ),
        (_layout(hosts=_host(1, ip="192.168.56.11")), "taken by another host"),
        (_layout(hosts=_host(1, name="lb1")), "listed twice"),
        (_layout(hosts=_host(1, name="lb 2")), "host name"),
        (_layout(hosts=_host(2, role="etcd")), "role 'etcd'"),
        (_layout(hosts=[h for h in _host(0) if h["role"] != "lb"]), "no host has the role lb"),
        (_layout(hosts=[]), "non-empty list"),
    ],
)
def test_bad_layout_names_the_file(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=r"^lay\.json: ") as e:
        vagrant.parse_layout(data, Path("lay.json"))
    assert message in str(e.value)


# --- what the lab writes ---------------------------------------------------------------


def test_hosts_ini_ssh_through_forwarded_ports(tmp_path: Path) -> None:
    layout = vagrant.parse_layout(LAYOUT, tmp_path / "layout.json")
    ssh = vagrant_parse.parse_ssh_config(ssh_config("/a dir/vagrant"))
    ini = vagrant.hosts_ini(layout, ssh, tmp_path)
    (tmp_path / "hosts.ini").write_text(ini)
    inv = load_inventory(tmp_path / "hosts.ini")
    lb2 = inv.hosts["lb2"]
    assert (lb2.ssh_address, lb2.port, lb2.user, lb2.ip) == (
        "127.0.0.1",
        2200,
        "vagrant",
        "192.168.56.12",
    )
    assert lb2.private_key_file == "/a dir/vagrant/.vagrant/machines/lb2/virtualbox/private_key"
    assert shlex.split(lb2.ssh_common_args or "") == [
        "-o",
        f"UserKnownHostsFile={tmp_path.resolve() / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PubkeyAcceptedKeyTypes=+ssh-rsa",
        "-o",
        "HostKeyAlgorithms=+ssh-rsa",
    ]
    assert lb2.vars["halb_service_manager"] == "systemd"
    groups = {g: list(inv.groups[g].hosts) for g in ("lb", "kube-master", "kube-node", "etcd")}
    assert groups == {
        "lb": ["lb1", "lb2"],
        "kube-master": ["master1", "master2", "master3"],
        "kube-node": ["node1", "node2", "node3"],
        "etcd": ["master1", "master2", "master3"],
    }
    assert sorted(inv.groups["k8s-cluster"].children) == ["kube-master", "kube-node"]


def test_hosts_ini_quotes_paths_with_spaces(tmp_path: Path) -> None:
    lab = tmp_path / "my lab"
    lab.mkdir()
    layout = vagrant.parse_layout(LAYOUT, lab / "layout.json")
    ssh = vagrant_parse.parse_ssh_config(ssh_config(str(tmp_path / "vm dir")))
    (lab / "hosts.ini").write_text(vagrant.hosts_ini(layout, ssh, lab))
    lb1 = load_inventory(lab / "hosts.ini").hosts["lb1"]
    assert lb1.private_key_file == f"{tmp_path}/vm dir/.vagrant/machines/lb1/virtualbox/private_key"
    args = shlex.split(lb1.ssh_common_args or "")  # as the ssh transport splits them
    assert args[:2] == ["-o", f"UserKnownHostsFile={lab.resolve()}/known_hosts"]


def test_hosts_ini_per_host_args_when_vms_differ(tmp_path: Path) -> None:
    layout = vagrant.parse_layout(LAYOUT, tmp_path / "layout.json")
    text = ssh_config(names=NAMES[:-1]) + ssh_block("node3", 2206, "/k", rsa=False)
    ini = vagrant.hosts_ini(layout, vagrant_parse.parse_ssh_config(text), tmp_path)
    (tmp_path / "hosts.ini").write_text(ini)
    inv = load_inventory(tmp_path / "hosts.ini")
    assert "HostKeyAlgorithms" in (inv.hosts["lb1"].ssh_common_args or "")
    assert "HostKeyAlgorithms" not in (inv.hosts["node3"].ssh_common_args or "")


def test_hosts_ini_refuses_a_vm_without_ssh(tmp_path: Path) -> None:
    layout = vagrant.parse_layout(LAYOUT, tmp_path / "layout.json")
    ssh = vagrant_parse.parse_ssh_config(ssh_config(names=NAMES[:5]))
    with pytest.raises(VagrantError, match=r"no entry for node1, node2, node3: the VM did not"):
        vagrant.hosts_ini(layout, ssh, tmp_path)


needs_tools = pytest.mark.skipif(
    shutil.which("haproxy") is None or shutil.which("keepalived") is None or os.geteuid() != 0,
    reason="render --check needs haproxy, keepalived and root",
)


@needs_tools
@pytest.mark.parametrize("profile", ["default", "emulated"])
def test_generated_files_pass_validate_and_render_check(tmp_path: Path, profile: str) -> None:
    layout = vagrant.parse_layout(LAYOUT, tmp_path / "layout.json")
    ssh = vagrant_parse.parse_ssh_config(ssh_config(str(tmp_path / "vagrant")))
    (tmp_path / "hosts.ini").write_text(vagrant.hosts_ini(layout, ssh, tmp_path))
    (tmp_path / "halb.yaml").write_text(vagrant.halb_yaml(layout, profile))
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "common.yaml").write_text(COMMON_YAML)
    spec = str(tmp_path / "halb.yaml")
    r = runner.invoke(app, ["validate", "-c", spec])
    assert r.exit_code == 0, r.output
    assert "2 LB host(s) (lb1, lb2), internal 192.168.56.253" in r.output
    out = tmp_path / "out"
    r = runner.invoke(app, ["render", "-c", spec, "-o", str(out), "--check"])
    assert r.exit_code == 0, r.output
    assert r.output.count(" ok") == 4
    keepalived = (out / "lb1/etc/keepalived/keepalived.conf").read_text()
    assert "interface eth1" in keepalived
    assert "192.168.56.253" in keepalived and "unicast_src_ip 192.168.56.11" in keepalived
    assert f"vrrp: {{profile: {profile}}}" in (tmp_path / "halb.yaml").read_text()
    haproxy = (out / "lb1/etc/haproxy/haproxy.cfg").read_text()
    assert "192.168.56.21:6443" in haproxy and "192.168.56.33:30880" in haproxy


def test_next_steps_hand_over_to_halb_up() -> None:
    layout = vagrant.parse_layout(LAYOUT, Path("l.json"))
    text = vagrant.next_steps(layout, Path("my lab"))
    assert "halb up -c 'my lab'/halb.yaml" in text
    assert "halb lab down --provider vagrant --dir 'my lab'" in text
    assert "192.168.56.253 (internal)" in text


def test_ansible_reads_the_inventory_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installer (Ansible) reads the generated inventory, quoted paths and all, as halb does."""
    pytest.importorskip("ansible")
    from ansible.inventory.manager import InventoryManager  # type: ignore[import-untyped]
    from ansible.parsing.dataloader import DataLoader  # type: ignore[import-untyped]
    from ansible.utils.display import Display  # type: ignore[import-untyped]

    for name in ("warning", "deprecated", "display"):
        monkeypatch.setattr(Display, name, lambda *a, **k: None)
    lab = tmp_path / "my lab"
    lab.mkdir()
    layout = vagrant.parse_layout(LAYOUT, lab / "layout.json")
    ssh = vagrant_parse.parse_ssh_config(ssh_config(str(tmp_path / "vm dir")))
    (lab / "hosts.ini").write_text(vagrant.hosts_ini(layout, ssh, lab))
    inv = load_inventory(lab / "hosts.ini")
    im = InventoryManager(loader=DataLoader(), sources=[str(lab / "hosts.ini")])
    assert list(im.hosts) == NAMES
    keys = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file", "ip")
    for name in NAMES:
        theirs = im.get_host(name).get_vars()
        assert {k: str(theirs[k]) for k in keys} == {k: str(inv.hosts[name].vars[k]) for k in keys}
    group_vars = im.groups["all"].get_vars()
    assert group_vars["ansible_ssh_common_args"] == inv.hosts["lb1"].ssh_common_args
    assert {h.name for h in im.groups["k8s-cluster"].get_hosts()} == set(NAMES[2:])
