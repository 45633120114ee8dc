"""The deploy plan is pure data computed from rendered files and observed facts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from halb.deploy import (
    Action,
    Plan,
    ServiceAction,
    compute_plan,
    diff_lines,
    mask_secrets,
    package_manager,
    plan_host,
    plan_lines,
    sha256,
)
from halb.errors import DeployError
from halb.facts.target import RemoteFile, TargetFacts, parse_facts_output, proc_sys_path
from halb.render import RenderedFile, render_cluster
from halb.spec import load_cluster

GOLDEN = Path(__file__).parent.parent / "golden" / "cases"
HCFG = "/etc/haproxy/haproxy.cfg"
KCFG = "/etc/keepalived/keepalived.conf"
CHECK = "/etc/keepalived/halb/check_haproxy.sh"
NOTIFY = "/etc/keepalived/halb/notify.sh"
SYSCTL = "/etc/sysctl.d/90-halb.conf"

FILES = {
    HCFG: RenderedFile("global\n    maxconn 100\n", 0o644),
    KCFG: RenderedFile("vrrp_instance x {\n    auth_pass s3cret\n}\n", 0o600),
    CHECK: RenderedFile("#!/bin/sh\nexit 0\n", 0o755),
    NOTIFY: RenderedFile("#!/bin/sh\nexit 0\n", 0o755),
    SYSCTL: RenderedFile("# c\nnet.ipv4.ip_nonlocal_bind = 1\n", 0o644),
}


def installed(files: dict[str, RenderedFile] = FILES, **over: RemoteFile | None) -> TargetFacts:
    """Facts of a host that already has exactly `files`, with overrides per path."""
    remote: dict[str, RemoteFile | None] = {
        p: RemoteFile(sha256(f.content.encode()), f.mode) for p, f in files.items()
    }
    for key, value in over.items():
        remote[{"h": HCFG, "k": KCFG, "c": CHECK, "n": NOTIFY, "s": SYSCTL}[key]] = value
    return TargetFacts(
        remote,
        {"haproxy": True, "keepalived": True},
        (),
        ("debian",),
        {"net.ipv4.ip_nonlocal_bind": "1"},
    )


def actions(hp: object) -> dict[str, str]:
    return {f.path: f.action.value for f in hp.files}  # type: ignore[attr-defined]


def test_fresh_host_creates_everything_and_starts_both() -> None:
    facts = TargetFacts({p: None for p in FILES}, {}, ("haproxy", "keepalived"), ("debian",), {})
    hp = plan_host("lb1", "systemd", FILES, facts, install=True)
    assert set(actions(hp).values()) == {"create"}
    assert hp.service("haproxy") == ServiceAction.START
    assert hp.service("keepalived") == ServiceAction.START
    assert hp.sysctl and hp.install == ("haproxy", "keepalived")
    assert hp.package_manager == "apt"
    assert hp.changed


def test_same_input_twice_is_unchanged_no_reload() -> None:
    hp = plan_host("lb1", "supervisor", FILES, installed(), install=True)
    assert set(actions(hp).values()) == {"unchanged"}
    assert all(s.action == ServiceAction.NONE for s in hp.services)
    assert not hp.sysctl and not hp.install and not hp.daemon_reload
    assert not hp.changed
    assert plan_lines(compute_plan({"lb1": FILES}, {"lb1": installed()}, {"lb1": "x"})) == [
        "lb1: unchanged"
    ]


def test_haproxy_change_reloads_haproxy_only() -> None:
    hp = plan_host("lb1", "systemd", FILES, installed(h=RemoteFile("0" * 64, 0o644)), install=True)
    assert actions(hp)[HCFG] == "update"
    assert hp.service("haproxy") == ServiceAction.RELOAD
    assert hp.service("keepalived") == ServiceAction.NONE


def test_keepalived_change_reloads_keepalived_only() -> None:
    hp = plan_host("lb1", "systemd", FILES, installed(k=None), install=True)
    assert actions(hp)[KCFG] == "create"
    assert hp.service("keepalived") == ServiceAction.RELOAD
    assert hp.service("haproxy") == ServiceAction.NONE


def test_script_change_needs_no_reload() -> None:
    hp = plan_host("lb1", "systemd", FILES, installed(c=RemoteFile("1" * 64, 0o755)), install=True)
    assert actions(hp)[CHECK] == "update"
    assert all(s.action == ServiceAction.NONE for s in hp.services)
    assert hp.changed


def test_mode_only_change_is_an_update() -> None:
    same = sha256(FILES[KCFG].content.encode())
    hp = plan_host("lb1", "systemd", FILES, installed(k=RemoteFile(same, 0o644)), install=True)
    assert actions(hp)[KCFG] == "update"
    (k,) = [f for f in hp.files if f.path == KCFG]
    assert (k.old_mode, k.mode) == (0o644, 0o600)
    assert "mode 0644 -> 0600" in "\n".join(
        plan_lines(
            compute_plan(
                {"lb1": FILES}, {"lb1": installed(k=RemoteFile(same, 0o644))}, {"lb1": "systemd"}
            )
        )
    )


def test_stopped_service_is_started_even_when_files_are_unchanged() -> None:
    f = installed()
    facts = TargetFacts(f.files, {"haproxy": False, "keepalived": True}, (), (), f.sysctl)
    hp = plan_host("lb1", "supervisor", FILES, facts, install=True)
    assert hp.service("haproxy") == ServiceAction.START
    assert hp.service("keepalived") == ServiceAction.NONE


def test_sysctl_applied_when_live_value_differs() -> None:
    f = installed()
    facts = TargetFacts(f.files, f.running, (), (), {"net.ipv4.ip_nonlocal_bind": "0"})
    assert plan_host("lb1", "x", FILES, facts, install=True).sysctl


def test_vrrp_filter_loaded_when_its_file_changed_or_its_table_is_gone() -> None:
    """A reboot drops halb's VRRP filter with its file unchanged: the plan loads it again."""
    nft = "/etc/keepalived/halb/vrrp.nft"
    files = {**FILES, nft: RenderedFile("table inet halb_vrrp {}\n", 0o600)}
    f = installed(files)
    hp = plan_host("lb1", "x", files, f, install=True)
    assert not hp.load_filter and not hp.changed  # in place and loaded
    gone = plan_host("lb1", "x", files, replace(f, vrrp_filter_loaded=False), install=True)
    assert gone.load_filter and gone.changed and not gone.changed_files
    assert compute_plan({"lb1": files}, {"lb1": replace(f, vrrp_filter_loaded=False)},
                        {"lb1": "x"}, install=True).as_dict()["lb1"]["vrrp_filter"]  # fmt: skip
    assert plan_lines(Plan((gone,)))[-1] == f"  load      {nft}"
    new = plan_host("lb1", "x", files, installed(), install=True)  # the file is new
    assert new.load_filter
    # no filter rendered (no nft on the host): nothing to load, whatever the table
    assert not plan_host(
        "lb1", "x", FILES, replace(f, vrrp_filter_loaded=False), install=True
    ).load_filter


def test_validation_order_scripts_first_keepalived_last() -> None:
    hp = plan_host("lb1", "x", FILES, TargetFacts({}, {}, (), (), {}), install=True)
    order = [f.path for f in hp.files]
    assert order.index(CHECK) < order.index(KCFG) and order.index(NOTIFY) < order.index(KCFG)
    assert order[-1] == KCFG
    assert {f.path: f.validator for f in hp.files}[HCFG] == "haproxy"


def test_no_install_leaves_install_empty() -> None:
    facts = TargetFacts({}, {}, ("keepalived",), ("ubuntu", "debian"), {})
    assert plan_host("lb1", "x", FILES, facts, install=False).install == ()


def test_systemd_dropin_change_daemon_reloads_and_reloads_service() -> None:
    files = {**FILES, "/etc/systemd/system/haproxy.service.d/90-halb.conf": RenderedFile("", 0o644)}
    hp = plan_host("lb1", "systemd", files, installed(FILES), install=True)
    assert hp.daemon_reload and hp.service("haproxy") == ServiceAction.RELOAD


@pytest.mark.parametrize(
    ("ids", "pm"),
    [
        (("debian",), "apt"),
        (("ubuntu", "debian"), "apt"),
        (("rocky", "rhel", "centos"), "dnf"),
        (("fedora",), "dnf"),
        (("alpine",), None),
        ((), None),
    ],
)
def test_package_manager(ids: tuple[str, ...], pm: str | None) -> None:
    assert package_manager(ids) == pm


def test_parse_facts_output() -> None:
    out = (
        "S net.ipv4.ip_nonlocal_bind 1\nS x.y \n"
        f"M 644 {HCFG}\n{'a' * 64}  {HCFG}\n"
        "C haproxy 1\nC keepalived 0\nO ubuntu debian\nE\n"
    )
    files, missing, os_ids, live = parse_facts_output([HCFG, KCFG], out)
    assert live == {"net.ipv4.ip_nonlocal_bind": "1", "x.y": ""}
    assert files == {HCFG: RemoteFile("a" * 64, 0o644), KCFG: None}
    assert missing == ("keepalived",)
    assert os_ids == ("ubuntu", "debian")
    with pytest.raises(DeployError, match="cut short"):
        parse_facts_output([HCFG, KCFG], out.removesuffix("E\n"))


def test_sysctl_keys_map_to_their_proc_files() -> None:
    assert proc_sys_path("net.ipv4.ip_nonlocal_bind") == "/proc/sys/net/ipv4/ip_nonlocal_bind"
    # sysctl writes a dot inside a name (a VLAN interface) as a slash
    assert proc_sys_path("net.ipv4.conf.eth0/100.arp_ignore") == (
        "/proc/sys/net/ipv4/conf/eth0.100/arp_ignore"
    )


def test_diff_masks_vrrp_password_and_other_secrets() -> None:
    facts = installed(k=RemoteFile("0" * 64, 0o600))
    plan = compute_plan({"lb1": FILES}, {"lb1": facts}, {"lb1": "systemd"})
    old = {("lb1", KCFG): "vrrp_instance y {\n    auth_pass oldpass\n}\n"}
    text = "\n".join(diff_lines(plan, old, ["s3cret"]))
    assert "s3cret" not in text and "oldpass" not in text
    assert "auth_pass ********" in text
    assert f"--- a/lb1:{KCFG}" in text and f"+++ b/lb1:{KCFG}" in text
    assert "-vrrp_instance y {" in text and "+vrrp_instance x {" in text
    # only the password changed: the diff says so without showing either
    only = {("lb1", KCFG): "vrrp_instance x {\n    auth_pass oldpass\n}\n"}
    assert diff_lines(plan, only, ["s3cret"]) == [
        f"# lb1:{KCFG}: update (only the mode or a masked secret)"
    ]


def test_mask_secrets_keeps_other_lines() -> None:
    assert mask_secrets("a\n  auth_pass  x y\nb", ["zz"]) == "a\n  auth_pass  ********\nb"


def test_plan_of_a_real_render_then_unchanged() -> None:
    """The rendered golden case, first on empty hosts, then on hosts that have it."""
    cluster = load_cluster(GOLDEN / "pass-auth" / "halb.yaml")
    rendered = render_cluster(cluster)
    empty = {
        h: TargetFacts({p: None for p in f}, {}, (), ("debian",), {}) for h, f in rendered.items()
    }
    managers = {h: "systemd" for h in rendered}
    first = compute_plan(rendered, empty, managers)
    assert first.changed and all(f.action == Action.CREATE for h in first.hosts for f in h.files)
    assert "Vr7pass" not in "\n".join(plan_lines(first))
    assert "Vr7pass" not in "\n".join(diff_lines(first, {}, [cluster.auth_password]))
    assert "Vr7pass" not in repr(first)
    have = {h: installed(dict(f)) for h, f in rendered.items()}
    second = compute_plan(rendered, have, managers)
    assert not second.changed
    assert second.as_dict()["lb1"]["changed"] is False
