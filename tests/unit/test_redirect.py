"""halb's nftables redirect, pure parts: what the spec resolves, what is rendered, how
`nft list set` output is read and how `halb status` judges it."""

from __future__ import annotations

import re
from pathlib import Path

from halb.facts.lbstate import facts_from_output
from halb.paths import HAPROXY_DROPIN, KEEPALIVED_CONF, NOTIFY_SCRIPT, REDIRECT_NFT, REDIRECT_SCRIPT
from halb.redirect import parse_status
from halb.render import render_cluster
from halb.spec import load_cluster
from halb.status import FrontendRef, VipRef, assess, render_text

CASES = Path(__file__).parent.parent / "golden" / "cases"

SET_TWO = """table ip halb_redirect {
\tset healthy {
\t\ttype ipv4_addr
\t\telements = { 10.250.85.253, 10.250.85.254 }
\t}
}
"""
SET_EMPTY = """table ip halb_redirect {
\tset healthy {
\t\ttype ipv4_addr
\t}
}
"""


def test_parse_status() -> None:
    assert parse_status(SET_TWO).vips == ("10.250.85.253", "10.250.85.254")
    assert parse_status(SET_TWO).text == "active 10.250.85.253, 10.250.85.254"
    assert parse_status(SET_EMPTY).text == "inactive"
    assert parse_status("").text == "absent"
    assert parse_status("absent\n").text == "absent"
    assert parse_status("no-nft\n").text == "no nft"
    wrapped = SET_TWO.replace("10.250.85.253, 10.250.85.254", "10.0.0.1,\n\t\t\t     10.0.0.2")
    assert parse_status(wrapped).vips == ("10.0.0.1", "10.0.0.2")


def test_the_guides_six_machines_keep_the_public_ports() -> None:
    cluster = load_cluster(CASES / "ks-guide-six" / "halb.yaml")
    assert cluster.apiserver_endpoint == ("192.168.0.253", 6443)
    assert [(f.name, f.port, f.listen_port) for f in cluster.frontends] == [
        ("apiserver", 6443, 9445),
        ("console", 30880, 9446),
    ]
    notes = [str(w) for w in cluster.warnings if w.level == "note"]
    assert len(notes) == 2 and "clients keep 192.168.0.253:6443" in notes[0]
    files = render_cluster(cluster)["master2"]
    assert files[REDIRECT_NFT].mode == 0o600 and files[REDIRECT_SCRIPT].mode == 0o755
    nft = files[REDIRECT_NFT].content
    assert "ip daddr 192.168.0.253 tcp dport 6443 dnat to 192.168.0.253:9445" in nft
    assert "type nat hook prerouting priority -120;" in nft
    assert "type nat hook output priority -120;" in nft
    assert 'sync "$name" "$state"' in files[NOTIFY_SCRIPT].content
    cfg = files["/etc/haproxy/haproxy.cfg"].content
    assert "bind 192.168.0.253:9445" in cfg and "bind 192.168.0.253:6443" not in cfg
    assert "server local_fallback 192.168.0.2:6443 backup no-check" in cfg


def test_haproxys_exit_does_not_fault_co_located_hosts(tmp_path: Path) -> None:
    """Co-located: no exit-file FAULT, a check per VIP that falls through to the host's own
    ports, two failures in a row even for `fast` (fall 1), and systemd's exit hook."""
    spec = (CASES / "ks-guide-six" / "halb.yaml").read_text()
    (tmp_path / "halb.yaml").write_text(spec.replace("profile: default", "profile: fast"))
    (tmp_path / "hosts.ini").write_text((CASES / "ks-guide-six" / "hosts.ini").read_text())
    (tmp_path / "conf").mkdir()
    files = render_cluster(load_cluster(tmp_path / "halb.yaml"))["master1"]
    conf = files[KEEPALIVED_CONF].content
    # no exit file tracked (the returning flag of failback.sh is the only track_file)
    assert "haproxy_exited" not in conf and "track_file returning_halb_internal {" in conf
    # ... and the instance tracks it: a returning co-located host comes back low too
    assert "    track_file {\n        returning_halb_internal\n    }\n" in conf
    assert 'script "/etc/keepalived/halb/redirect.sh check halb_internal"' in conf
    assert "chk_haproxy_halb_internal {\n    script" in conf
    assert re.search(r"check halb_internal\"\n.*?fall 2\n", conf, re.S)
    script = files[REDIRECT_SCRIPT].content
    assert 'halb_internal) ports="6443:readyz 30880:http" ;;' in script
    assert '/dev/tcp/$0/$1"\' 192.168.0.1 "$p"' in script
    assert f"ExecStopPost=-{REDIRECT_SCRIPT} exited" in files[HAPROXY_DROPIN].content


def test_dedicated_lb_hosts_render_no_redirect() -> None:
    cluster = load_cluster(CASES / "ks-guide" / "halb.yaml")
    assert cluster.redirected == ()
    files = render_cluster(cluster)["lb1"]
    assert REDIRECT_NFT not in files and "redirect" not in files[NOTIFY_SCRIPT].content


VIPS = [VipRef("internal", "10.0.0.253", "halb_internal")]
FES = [FrontendRef("apiserver", "internal", ("m1", "m2"), redirected=True)]


def _facts(redirect: str, host: str = "m1") -> str:
    return f"@@ip\n@@stat\n@@redirect\n{redirect}@@end\n"


def test_status_reports_the_redirect_per_host() -> None:
    active = facts_from_output("m1", _facts(SET_TWO.replace(", 10.250.85.254", "").replace(
        "10.250.85.253", "10.0.0.253")))  # fmt: skip
    gone = facts_from_output("m2", _facts(""))
    report = assess([active, gone], VIPS, FES)
    assert [h.redirect for h in report.hosts] == ["active 10.0.0.253", "absent"]
    assert any("m2: halb's nftables redirect is not loaded" in p for p in report.problems)
    assert "redirect active 10.0.0.253" in "\n".join(render_text(report))


def test_status_without_a_redirected_frontend_says_nothing_of_it() -> None:
    plain = [FrontendRef("apiserver", "internal", ("m1",))]
    report = assess([facts_from_output("lb1", _facts(""))], VIPS, plain)
    assert report.hosts[0].redirect is None
    assert not any("redirect" in p for p in report.problems)
