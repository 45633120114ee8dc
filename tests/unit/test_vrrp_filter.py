"""halb's VRRP filter, pure parts: the rendered table (through the real `nft -c` in a
network namespace of its own when the test runs as root), the MAC and status parsers on
captured output, and the MAC-change finding."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from halb import vrrp_filter as vf
from halb.paths import VRRP_NFT
from halb.render import render_cluster, with_vrrp_filter
from halb.spec import load_cluster

CASES = Path(__file__).parent.parent / "golden" / "cases"
CAPTURED = Path(__file__).parent.parent / "fixtures" / "vrrp_filter" / "list-table.json"
MACS = {"lb1": {"eth0": "02:00:00:00:00:11"}, "lb2": {"eth0": "02:00:00:00:00:12"}}


def test_each_host_accepts_its_peers_pair_only() -> None:
    c = load_cluster(CASES / "ks-guide" / "halb.yaml")
    files = with_vrrp_filter(c, render_cluster(c), MACS)
    lb1 = files["lb1"][VRRP_NFT]
    assert lb1.mode == 0o600
    ip2 = c.host_ip(c.lb_hosts[1])
    assert f'"eth0" . {ip2} . 02:00:00:00:00:12,  # lb2' in lb1.content
    assert "02:00:00:00:00:11" not in lb1.content  # not its own
    assert 'iifname { "eth0" } jump vrrp' in lb1.content
    assert "update @foreign4" in lb1.content and "counter name dropped drop" in lb1.content
    # the other files are the ones render_cluster gives, untouched
    assert {p: f for p, f in files["lb1"].items() if p != VRRP_NFT} == render_cluster(c)["lb1"]


def test_two_interfaces_are_both_filtered() -> None:
    c = load_cluster(CASES / "external-vip" / "halb.yaml")
    ifaces = vf.interfaces(c)
    macs = {
        h.name: {i: f"02:00:00:00:0{n}:0{k}" for k, i in enumerate(ifaces)}
        for n, h in enumerate(c.lb_hosts)
    }
    text = with_vrrp_filter(c, render_cluster(c), macs)[c.lb_hosts[0].name][VRRP_NFT].content
    for i in ifaces:
        assert f'"{i}"' in text


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="nft -c needs root (in a network namespace of its own)",
)
@pytest.mark.parametrize("case", ["ks-guide", "external-vip", "pass-auth", "single-lb"])
def test_nft_accepts_the_table(case: str) -> None:
    c = load_cluster(CASES / case / "halb.yaml")
    ifaces = vf.interfaces(c)
    macs = {
        h.name: {i: f"02:00:00:00:00:{n:02x}" for i in ifaces} for n, h in enumerate(c.lb_hosts)
    }
    files = with_vrrp_filter(c, render_cluster(c), macs)
    # nft resolves nothing by name here (iifname matches strings), but give the
    # namespace the interfaces anyway, as a host has them
    links = " && ".join(f"ip link add {i} type veth peer name p{n}" for n, i in enumerate(ifaces))
    for host in files:
        r = subprocess.run(
            ["unshare", "--net", "sh", "-c", f"{links} && nft -c -f -"],
            input=files[host][VRRP_NFT].content,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, (case, host, r.stderr)


def test_parse_macs() -> None:
    out = "eth0 02:AB:00:00:00:11\nbond0 -\nbad line here\n"
    assert vf.parse_macs(out) == {"eth0": "02:ab:00:00:00:11"}


def test_macs_and_load_argv_carry_values_as_arguments() -> None:
    argv = vf.macs_argv(("eth0", "bond0"))
    assert argv[:2] == ["sh", "-c"] and argv[-2:] == ["eth0", "bond0"]
    subprocess.run(["sh", "-n", "-c", argv[2]], check=True)
    load = vf.load_argv({"eth0": "02:00:00:00:00:11"})
    assert load[-3:] == [VRRP_NFT, "eth0", "02:00:00:00:00:11"]
    subprocess.run(["sh", "-n", "-c", load[2]], check=True)


def test_load_refuses_a_mac_that_is_not_the_hosts(tmp_path: Path) -> None:
    """The check runs for real against this machine's loopback (00:00:00:00:00:00)."""
    load = vf.load_argv({"lo": "02:00:00:00:00:11"})
    r = subprocess.run(load, capture_output=True, text=True, timeout=30)
    assert r.returncode == 3
    assert "the MAC of lo is 00:00:00:00:00:00 now, not 02:00:00:00:00:11" in r.stdout


def test_parse_captured_table_with_a_foreign_sender() -> None:
    """Captured: a forged advert (a peer's address, another MAC) sent twice at the table."""
    st = vf.parse_status(CAPTURED.read_text())
    assert st.present and st.dropped == 2
    assert st.peers == (("veth0", "10.77.0.2", "02:00:00:00:00:12"),)
    assert st.peer_macs == (("veth0", "02:00:00:00:00:12"),)
    assert st.foreign == (vf.Foreign("veth0", "10.77.0.2", "42:38:f5:ae:6c:24", 2),)
    assert "10.77.0.2 from MAC 42:38:f5:ae:6c:24 on veth0 (2 dropped)" in st.text


def test_parse_markers() -> None:
    assert vf.parse_status("absent\n").text == "absent"
    assert vf.parse_status("").present is False
    assert vf.parse_status("no-nft\n").text == "no nft"
    assert "nothing dropped" in vf.parse_status('{"nftables": [{"table": {}}]}').text


def test_a_changed_mac_names_the_peer_and_the_host_that_drops_it() -> None:
    c = load_cluster(CASES / "ks-guide" / "halb.yaml")
    ip2 = c.host_ip(c.lb_hosts[1])
    table = vf.FilterState(True, peers=(("eth0", ip2, "02:00:00:00:00:12"),))
    assert vf.mac_changes(c, MACS, {"lb1": table}) == []
    now = {**MACS, "lb2": {"eth0": "02:00:00:00:99:12"}}
    (ch,) = vf.mac_changes(c, now, {"lb1": table})
    assert (ch.host, ch.on, ch.now, ch.accepted) == (
        "lb2",
        "lb1",
        "02:00:00:00:99:12",
        "02:00:00:00:00:12",
    )
    assert ch.text.startswith("the MAC of lb2's eth0 is 02:00:00:00:99:12 now, but lb1's")


def test_learn_reads_the_macs_and_whether_nft_is_there_for_real() -> None:
    from halb.gather import learn_macs
    from halb.transport.base import Privilege
    from halb.transport.local import LocalTransport

    here = LocalTransport("here", Privilege("none"))
    macs, no_nft, missing, loaded = learn_macs({"here": here}, ("lo",))
    assert macs == {"here": {"lo": "00:00:00:00:00:00"}} and missing == {}
    assert loaded == set()  # the machine's own namespace never has halb's table
    assert no_nft == ([] if shutil.which("nft") else ["here"])
    _, _, missing, _ = learn_macs({"here": here}, ("lo", "nosuch0"))
    assert missing == {"here": ["nosuch0"]}


def test_preflight_fails_on_the_peer_whose_mac_changed_and_passes_the_rest() -> None:
    from halb.level import Level
    from halb.preflight.judge import vrrp_filter_results
    from halb.preflight.observed import Observed

    c = load_cluster(CASES / "ks-guide" / "halb.yaml")
    ip1, ip2 = (c.host_ip(h) for h in c.lb_hosts)
    t1 = vf.FilterState(True, peers=(("eth0", ip2, "02:00:00:00:00:12"),))
    t2 = vf.FilterState(True, peers=(("eth0", ip1, "02:00:00:00:00:11"),))
    facts = {
        "lb1": Observed("lb1", macs={"eth0": "02:00:00:00:00:11"}, vrrp_filter=t1),
        "lb2": Observed("lb2", macs={"eth0": "02:00:00:00:99:12"}, vrrp_filter=t2),
    }
    got = {(r.host, r.level) for r in vrrp_filter_results(c, facts)}
    assert got == {("lb2", Level.FAIL), ("lb2", Level.OK)}  # lb2's own table is fine
    facts["lb2"] = Observed("lb2", macs={"eth0": "02:00:00:00:00:12"}, vrrp_filter=t2)
    assert {r.level for r in vrrp_filter_results(c, facts)} == {Level.OK}
    # no table loaded yet (a first deploy): nothing to compare, nothing said
    assert vrrp_filter_results(c, {"lb1": Observed("lb1", macs={"eth0": "x"})}) == []


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="nft needs root (in a network namespace of its own)",
)
def test_status_shows_a_filter_that_is_not_loaded_for_real() -> None:
    """The table is not reloaded at boot: a host without it says so in `halb status`. The
    status check runs inside the gather script, in a namespace with no table and then
    with one, and the script goes on past it."""
    from halb.facts.lbstate import GATHER, facts_from_output
    from halb.status_report import assess, render_text

    # the gather script's own line, and a line after it
    (line,) = [ln for ln in GATHER.splitlines() if ln.startswith("echo @@vrrp_filter")]
    script = f"{line}\necho @@end\n"
    c = load_cluster(CASES / "ks-guide" / "halb.yaml")
    table = with_vrrp_filter(c, render_cluster(c), MACS)["lb1"][VRRP_NFT].content
    load = f"nft -f - <<'EOF'\n{table}EOF\n"
    outs = []
    for before in ("", load):
        r = subprocess.run(
            ["unshare", "--net", "sh", "-c", before + script],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0 and r.stdout.rstrip().endswith("@@end"), r.stderr
        outs.append(facts_from_output("lb1", r.stdout))
    absent, loaded = (f.vrrp_filter for f in outs)
    assert absent is not None and absent.nft and not absent.present
    assert loaded is not None and loaded.present and len(loaded.peers) == 1
    report = assess(outs[:1], [], [])
    (shown,) = [ln for ln in render_text(report) if ln.startswith("lb1:")]
    assert shown.endswith("; vrrp filter absent")
    assert facts_from_output("lb1", "@@ip\n@@end\n").vrrp_filter is None  # not read
