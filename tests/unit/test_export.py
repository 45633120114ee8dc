"""`halb export ansible`: the export holds the rendered bytes, no secret, and valid Ansible."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from halb.cli import app
from halb.export import ansible
from halb.paths import REDIRECT_NFT, REDIRECT_SCRIPT
from halb.render import KEEPALIVED_CONF, render_cluster, with_vrrp_filter
from halb.spec import load_cluster

GOLDEN = Path(__file__).parent.parent / "golden" / "cases"
KS_PASSWORD = "Example@123"  # the inventories' ansible_ssh_pass
VRRP_PASSWORD = "Vr7pass"  # pass-auth's vrrp.auth.password


@pytest.fixture
def case(tmp_path: Path) -> Path:
    """A copy of the pass-auth golden case: SSH passwords in the inventory, a VRRP password."""
    d = tmp_path / "cluster"
    shutil.copytree(GOLDEN / "pass-auth", d, ignore=shutil.ignore_patterns("expected"))
    return d / "halb.yaml"


def export(spec: Path, dest: Path) -> None:
    r = CliRunner().invoke(app, ["export", "ansible", "-c", str(spec), str(dest)])
    assert r.exit_code == 0, r.output


def all_text(dest: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(dest.rglob("*")) if p.is_file())


def test_host_files_are_the_rendered_bytes_with_the_password_as_placeholder(
    case: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    export(case, dest)
    c = load_cluster(case)
    # plus halb's VRRP filter with a placeholder for each peer's MAC (filled in by the play)
    rendered = with_vrrp_filter(c, render_cluster(c), ansible.mac_placeholders(c))
    assert set(rendered) == {"lb1", "lb2"}
    for host, files in rendered.items():
        on_disk = {
            "/" + str(p.relative_to(dest / "host_files" / host))
            for p in (dest / "host_files" / host).rglob("*")
            if p.is_file()
        }
        assert on_disk == set(files)
        for path, f in files.items():
            got = (dest / "host_files" / host / path.lstrip("/")).read_bytes()
            want = f.content.encode()
            if path == KEEPALIVED_CONF:
                assert VRRP_PASSWORD.encode() in want
                want = want.replace(VRRP_PASSWORD.encode(), ansible.PLACEHOLDER.encode())
            assert got == want, (host, path)
        listed = yaml.safe_load((dest / "host_vars" / f"{host}.yml").read_text())
        assert {e["path"]: int(e["mode"], 8) for e in listed["halb_export_files"]} == {
            p: f.mode for p, f in files.items()
        }


def test_no_secret_anywhere_in_the_export(case: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    export(case, dest)
    text = all_text(dest)
    for secret in (KS_PASSWORD, VRRP_PASSWORD):
        assert secret not in text
    # the inventory is referenced, not copied
    cfg = (dest / "ansible.cfg").read_text()
    assert f"inventory = {case.parent / 'hosts.ini'}" in cfg


def test_password_file_is_read_at_run_time_from_its_own_path(case: Path, tmp_path: Path) -> None:
    pw = case.parent / "vrrp.pass"
    pw.write_text("Zq9pass\n")
    data = yaml.safe_load(case.read_text())
    data["vrrp"]["auth"] = {"password_file": "vrrp.pass"}
    case.write_text(yaml.safe_dump(data))
    dest = tmp_path / "out"
    export(case, dest)
    assert "Zq9pass" not in all_text(dest)
    play = yaml.safe_load((dest / "site.yml").read_text())[0]
    assert str(pw) in play["vars"]["halb_vrrp_auth_pass"]


def test_every_config_is_validated_backed_up_and_reloaded_not_restarted(
    case: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    export(case, dest)
    role = dest / "roles" / ansible.ROLE
    tasks = yaml.safe_load((role / "tasks" / "main.yml").read_text())
    copies = [t for t in tasks if "ansible.builtin.copy" in t]
    assert copies and all(t["ansible.builtin.copy"]["backup"] is True for t in copies)
    validate = {t["name"]: t["ansible.builtin.copy"].get("validate") for t in copies}
    assert validate["haproxy.cfg"] == "haproxy -c -f %s"
    assert validate["keepalived.conf"] == "keepalived -t -f %s"
    assert validate["keepalived.conf (with the VRRP password)"] == "keepalived -t -f %s"
    assert validate["keepalived scripts"] == "sh -n %s"
    secret_task = next(t for t in copies if "VRRP" in t["name"])
    assert secret_task["no_log"] is True and secret_task["diff"] is False
    text = (role / "handlers" / "main.yml").read_text() + all_text(role / "files")
    assert "restart" not in text.replace("never restart", "")


def test_service_script_is_valid_sh_and_uses_halbs_supervisor_commands() -> None:
    script = ansible.service_script()
    r = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert "keepalived -f /etc/keepalived/keepalived.conf -p /run/keepalived.pid" in script
    assert "haproxy -W -db -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid" in script
    assert "/run/halb-haproxy.exited" in script


def test_unknown_service_manager_is_refused_by_the_script(tmp_path: Path) -> None:
    f = tmp_path / "s.sh"
    f.write_text(ansible.service_script())
    r = subprocess.run(["sh", str(f), "ensure", "haproxy", "upstart"], capture_output=True)
    assert r.returncode == 2 and b"unknown halb_service_manager upstart" in r.stderr


def test_syntax_check(case: Path, tmp_path: Path) -> None:
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook is not installed (pip install ansible-core)")
    dest = tmp_path / "out"
    export(case, dest)
    r = subprocess.run(
        ["ansible-playbook", "--syntax-check", "site.yml"],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "playbook: site.yml" in r.stdout


def test_re_export_replaces_an_export_but_not_another_folder(case: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    export(case, dest)
    (dest / "host_files" / "stale").mkdir()
    export(case, dest)
    assert not (dest / "host_files" / "stale").exists()

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me\n")
    r = CliRunner().invoke(app, ["export", "ansible", "-c", str(case), str(other)])
    assert r.exit_code == 2
    assert "not a halb export" in r.output and str(other) in r.output
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_bad_spec_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "halb.yaml"
    spec.write_text("cluster: x\ninventory: missing.ini\nvips: {internal: {address: 1.2.3.4}}\n")
    r = CliRunner().invoke(app, ["export", "ansible", "-c", str(spec), str(tmp_path / "out")])
    assert r.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_password_that_also_appears_elsewhere_is_refused() -> None:
    conf = "vrrp_instance a {\n    interface eth0\n    auth_pass eth0\n}\n"
    with pytest.raises(Exception, match="could not be kept out"):
        ansible._without_password(conf, "eth0", "lb1")
    assert ansible.PLACEHOLDER in ansible._without_password(
        conf.replace("auth_pass eth0", "auth_pass Qw3rty"), "Qw3rty", "lb1"
    )


def test_colocated_export_checks_and_loads_the_redirect(tmp_path: Path) -> None:
    d = tmp_path / "six"
    shutil.copytree(GOLDEN / "ks-guide-six", d, ignore=shutil.ignore_patterns("expected"))
    dest = tmp_path / "out"
    export(d / "halb.yaml", dest)
    host = yaml.safe_load((dest / "host_vars" / "master1.yml").read_text())
    kinds = {f["path"]: f["kind"] for f in host["halb_export_files"]}
    assert kinds[REDIRECT_NFT] == "nft" and kinds[REDIRECT_SCRIPT] == "script"
    role = dest / "roles" / ansible.ROLE
    tasks = yaml.safe_load((role / "tasks" / "main.yml").read_text())
    task = next(t for t in tasks if t["name"] == "nftables redirect")
    assert task["ansible.builtin.copy"]["validate"] == "nft -c -f %s"
    assert task["notify"] == "halb load redirect"
    handlers = yaml.safe_load((role / "handlers" / "main.yml").read_text())
    names = [h["name"] for h in handlers]
    assert names.index("halb reload haproxy") < names.index("halb load redirect")
    load = handlers[names.index("halb load redirect")]["ansible.builtin.command"]
    assert load == f"sh {REDIRECT_SCRIPT} load"
    nft = (dest / ansible.HOST_FILES / "master1" / REDIRECT_NFT.lstrip("/")).read_text()
    assert nft == render_cluster(load_cluster(d / "halb.yaml"))["master1"][REDIRECT_NFT].content


def test_the_vrrp_filter_is_filled_in_from_each_peers_own_mac(case: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    export(case, dest)
    c = load_cluster(case)
    host = yaml.safe_load((dest / "host_vars" / "lb1.yml").read_text())
    assert host["halb_vrrp_interfaces"] == ["eth0"]
    assert host["halb_vrrp_macs"] == [
        {"placeholder": "@@HALB_MAC_lb2_eth0@@", "host": "lb2", "interface": "eth0"}
    ]
    kinds = {f["path"]: f["kind"] for f in host["halb_export_files"]}
    assert kinds["/etc/keepalived/halb/vrrp.nft"] == "vrrp_filter"
    text = (dest / ansible.HOST_FILES / "lb1/etc/keepalived/halb/vrrp.nft").read_text()
    assert "@@HALB_MAC_lb2_eth0@@" in text
    # the placeholder replaced by the MAC gives exactly what halb deploy renders
    macs = {"lb1": {"eth0": "02:00:00:00:00:11"}, "lb2": {"eth0": "02:00:00:00:00:12"}}
    want = with_vrrp_filter(c, render_cluster(c), macs)["lb1"]["/etc/keepalived/halb/vrrp.nft"]
    assert text.replace("@@HALB_MAC_lb2_eth0@@", "02:00:00:00:00:12") == want.content
    task, load = (
        role_entry(dest, "tasks", "nftables peer filter (halb_vrrp)"),
        role_entry(dest, "handlers", "halb load vrrp filter"),
    )
    assert task["ansible.builtin.copy"]["validate"] == "nft -c -f %s"
    assert task["notify"] == "halb load vrrp filter"
    assert load["ansible.builtin.command"] == "nft -f /etc/keepalived/halb/vrrp.nft"


def role_entry(dest: Path, kind: str, name: str) -> dict[str, object]:
    """One task or handler of the exported role, by its name."""
    entries = yaml.safe_load((dest / "roles" / ansible.ROLE / kind / "main.yml").read_text())
    found: dict[str, object] = next(e for e in entries if e["name"] == name)
    return found


MAC_TASKS = (
    "MACs of the VIPs' interfaces",
    "this host's MACs",
    "every peer's MACs are known (all LB hosts in the play)",
    "every peer's MAC is a MAC",
)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ansible-playbook") or not shutil.which("unshare"),
    reason="needs root (a tun interface in a network namespace of its own) and ansible-playbook",
)
def test_a_peer_read_that_is_no_mac_stops_the_filter_for_real(case: Path, tmp_path: Path) -> None:
    """The role's own MAC tasks, run by ansible-playbook in a network namespace: lb2 reads
    a tun interface (no Ethernet address: its read is empty), lb1 reads lo. lb1 must stop
    before its table is written, naming lb2's interface; lb2 goes on with lb1's MAC."""
    dest = tmp_path / "out"
    export(case, dest)
    pattern = yaml.safe_load((dest / "host_vars" / "lb1.yml").read_text())["halb_mac_pattern"]
    tasks = yaml.safe_load((dest / "roles" / ansible.ROLE / "tasks" / "main.yml").read_text())
    play = [{"hosts": "all", "gather_facts": False, "tasks": [
        t for t in tasks if t["name"] in MAC_TASKS
    ]}]  # fmt: skip
    assert len(play[0]["tasks"]) == len(MAC_TASKS)
    peer = {"placeholder": "@@x@@", "interface": "t0", "host": "lb2"}
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "lb1": {**common, "halb_vrrp_interfaces": ["lo"], "halb_vrrp_macs": [peer]},
        "lb2": {**common, "halb_vrrp_interfaces": ["t0"],
                "halb_vrrp_macs": [{**peer, "interface": "lo", "host": "lb1"}]},
    }  # fmt: skip
    for h in hosts.values():
        h["halb_mac_pattern"] = pattern
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    script = (
        "mount -t sysfs sysfs /sys && ip tuntap add t0 mode tun && "
        'exec ansible-playbook -i "$1/hosts.yml" "$1/play.yml"'
    )
    r = subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c", script, "sh", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "lb2's t0 has no Ethernet MAC (\"\"): halb's VRRP filter on lb1" in out, out
    recap = dict(re.findall(r"^(lb\d)\s+: .*failed=(\d+)", r.stdout, re.M))
    assert recap == {"lb1": "1", "lb2": "0"}, out
