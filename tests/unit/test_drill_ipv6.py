"""The drill over IPv6 without a lab: the capture agent's filter and the decoder on frames
built with scapy (unsolicited neighbour advertisements, VRRPv3 over IPv6, SYN-ACKs, with
and without extension headers), the figures per VIP and family of dual-stack and
IPv6-only rounds, the probes' lanes, and the rogue faults' refusal."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRPv3
from scapy.packet import Packet as ScapyPacket
from typer.testing import CliRunner

from halb.cli import app
from halb.cli.drill import _round_line
from halb.drill import capture, plot
from halb.drill import report as rp
from halb.drill.fault_kinds import KINDS, Fault
from halb.drill.load import Load, Target
from halb.drill.model import Packet, Probe, RoundRecord, record_from_dict
from halb.drill.run import Drill, Settings, lanes_of, rogue_vips, targets_of
from halb.errors import InputError
from halb.spec import load_cluster
from tests.needs import need
from tests.unit.test_drill_report import NEW_MAC, OLD_MAC, a_round

CASES = Path(__file__).parent.parent / "golden" / "cases"
VIP4, VIP6, VIP6B = "10.9.0.253", "fd00:9::253", "fd00:9::254"  # a_round's VIP is VIP4
ALL_NODES = "33:33:00:00:00:01"


def agent_filter() -> dict[str, Any]:
    """The agent's own filter functions, run as the agent runs them."""
    ns: dict[str, Any] = {}
    exec(capture.AGENT_FILTER, ns)
    return ns


def kept(frame: ScapyPacket, vips: tuple[str, ...] = (VIP4, VIP6)) -> bytes | None:
    """What the agent would print of a frame (None: dropped)."""
    ns = agent_filter()
    raw = bytes(frame)
    cut: int = ns["keep"](raw, *ns["wanted"](vips))
    return raw[:cut] if cut else None


def decoded(frame: ScapyPacket, observer: str = "client") -> Packet | None:
    """The agent's filter, its output line, and the decoder, as in a drill."""
    raw = kept(frame)
    return None if raw is None else capture.parse_line(observer, f"100.250000 {raw.hex()}")


def una(target: str, mac: str = NEW_MAC, src: str = "fd00:9::12", **flags: int) -> ScapyPacket:
    """An unsolicited neighbour advertisement, as keepalived sends for a VIP it takes."""
    na = ICMPv6ND_NA(tgt=target, R=0, S=flags.get("S", 0), O=1)
    return (
        Ether(src=mac, dst=ALL_NODES)
        / IPv6(src=src, dst="ff02::1", hlim=255)
        / na
        / ICMPv6NDOptDstLLAddr(lladdr=mac)
    )


def advert6(prio: int, *ext: ScapyPacket, src: str = "fe80::1") -> ScapyPacket:
    v = VRRPv3(vrid=61, priority=prio, ipcount=1, addrlist=[VIP6])
    ip: ScapyPacket = IPv6(src=src, dst="ff02::12", hlim=255)
    for e in ext:
        ip = ip / e
    return Ether(src=OLD_MAC, dst="33:33:00:00:00:12") / ip / v


def test_unsolicited_na_for_a_vip_is_an_announcement_others_are_not() -> None:
    p = decoded(una(VIP6))
    assert p is not None
    assert (p.kind, p.addr, p.mac, p.src, p.ts) == ("na", VIP6, NEW_MAC, "fd00:9::12", 100.25)
    # a solicited NA answers a neighbour solicitation: no announcement (as an ARP reply)
    assert kept(una(VIP6, S=1)) is not None and decoded(una(VIP6, S=1)) is None
    # an NA for an address that is no VIP, and a solicitation, never leave the host
    assert kept(una("fd00:9::77")) is None
    ns = Ether(src=NEW_MAC) / IPv6(src="fd00:9::5", dst="ff02::1:ff00:253") / ICMPv6ND_NS(tgt=VIP6)
    assert kept(ns) is None


def test_vrrpv3_over_ipv6_with_source_and_priority_past_extension_headers() -> None:
    plain = decoded(advert6(254))
    assert plain is not None
    assert (plain.kind, plain.src, plain.mac, plain.vrid, plain.prio) == (
        "advert",
        "fe80::1",
        OLD_MAC,
        61,
        254,
    )
    hop = advert6(0, IPv6ExtHdrHopByHop(options=[RouterAlert()]), src="fd00:9::11")
    raw = kept(hop)
    assert raw is not None and len(raw) >= 14 + 40 + 8 + 8  # the cut covers VRRP's header
    p = decoded(hop)
    assert p is not None and (p.kind, p.src, p.vrid, p.prio) == ("advert", "fd00:9::11", 61, 0)
    two = advert6(100, IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(offset=0, m=0))
    p = decoded(two)
    assert p is not None and (p.kind, p.prio) == ("advert", 100)
    # a later fragment carries no VRRP header: dropped by the agent and by the decoder
    later = advert6(100, IPv6ExtHdrFragment(offset=4, m=0))
    assert kept(later) is None
    assert capture.decode("x", 1.0, bytes(later)) is None


def test_synack_from_an_ipv6_vip_with_and_without_extension_headers() -> None:
    def synack(src: str, *ext: ScapyPacket, flags: str = "SA") -> ScapyPacket:
        ip: ScapyPacket = IPv6(src=src, dst="fd00:9::5")
        for e in ext:
            ip = ip / e
        return Ether(src=OLD_MAC) / ip / TCP(sport=6443, dport=40000, flags=flags)

    p = decoded(synack(VIP6))
    assert p is not None and (p.kind, p.addr, p.src, p.mac) == ("synack", VIP6, VIP6, OLD_MAC)
    p = decoded(synack(VIP6, IPv6ExtHdrDestOpt()))
    assert p is not None and (p.kind, p.addr) == ("synack", VIP6)
    assert kept(synack("fd00:9::12")) is None  # not from a VIP
    assert kept(synack(VIP6, flags="S")) is None and kept(synack(VIP6, flags="R")) is None


def test_the_agent_keeps_ipv4_frames_as_before() -> None:
    garp = Ether(src=OLD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=OLD_MAC, psrc=VIP4, pdst=VIP4)
    synack = Ether(src=OLD_MAC) / IP(src=VIP4, dst="10.9.0.5") / TCP(flags="SA")
    other = Ether(src=OLD_MAC) / IP(src="10.9.0.12", dst="10.9.0.5") / TCP(flags="SA")
    for frame, want in ((garp, "garp"), (synack, "synack")):
        raw = kept(frame)
        assert raw is not None and raw == bytes(frame)[:96]
        p = decoded(frame)
        assert p is not None and p.kind == want
    assert kept(other) is None
    # only IPv4 VIPs asked for: an IPv6 VIP's NA is dropped
    assert kept(una(VIP6), (VIP4,)) is None


# ------------------------------------------------------------------------------ figures


def probes(lane: str, t0: float, t1: float, bad: tuple[float, float]) -> list[Probe]:
    out = []
    for i in range(round((t1 - t0) / 0.01)):
        s = t0 + i * 0.01
        ok = not bad[0] <= s < bad[1]
        out.append(Probe(lane, s, s + 0.002, ok, "" if ok else "timeout"))
    return out


def dual_round() -> RoundRecord:
    """Fault at 10.0 on lb1. IPv4: lb2's GARP at 10.61, clients fail 10.0-10.6. IPv6: lb2's
    NA at 10.70 (internal6) and 10.72 (external6), clients fail 10.0-10.7. The old holder
    takes back internal at 16.9 (GARP) and internal6 at 16.95 (NA); restore at 13."""
    labels = ("internal", "internal6", "external6")
    r = a_round(
        vips={"internal": VIP4, "internal6": VIP6, "external6": VIP6B},
        frontends={"apiserver": "internal", "apiserver6": "internal6", "console6": "external6"},
        holders_before={v: ["lb1"] for v in labels},
        holders_end={v: ["lb1"] for v in labels},
        polls=[(11.0, {v: ["lb2"] for v in labels})],
    )
    r.probes = [
        *probes("apiserver", 9.0, 20.0, (10.0, 10.6)),
        *probes("apiserver6", 9.0, 20.0, (10.0, 10.7)),
        *probes("console6", 9.0, 20.0, (10.0, 10.72)),
    ]
    r.packets = [
        Packet(9.9, "lb2", "advert", "10.9.0.11", OLD_MAC, vrid=50, prio=254),
        # the IPv6 instance's advert: from the old holder's link-local address
        Packet(9.95, "lb2", "advert", "fe80::1", OLD_MAC, vrid=61, prio=254),
        Packet(10.0, "lb2", "advert", "fe80::1", OLD_MAC, vrid=61, prio=0),
        Packet(10.61, "client", "garp", "10.9.0.12", NEW_MAC, addr=VIP4),
        Packet(10.65, "client", "synack", VIP6, OLD_MAC, addr=VIP6),  # before the NA
        Packet(10.70, "client", "na", "fd00:9::12", NEW_MAC, addr=VIP6),
        Packet(10.71, "client", "synack", VIP6, OLD_MAC, addr=VIP6),  # after it: counted
        Packet(10.72, "client", "na", "fd00:9::12", NEW_MAC, addr=VIP6B),
        Packet(16.9, "client", "garp", "10.9.0.11", OLD_MAC, addr=VIP4),
        Packet(16.95, "client", "na", "fd00:9::11", OLD_MAC, addr=VIP6),
    ]
    return r


def test_dual_stack_round_has_figures_per_vip_and_family() -> None:
    f = rp.figures(dual_round())
    assert f.takeover_s == pytest.approx(0.61) and f.new_holder == "lb2"  # the IPv4 GARP
    assert f.failback_s == pytest.approx(3.9)
    assert f.ipv6_vips == {
        "internal6": rp.VipTimes(VIP6, pytest.approx(0.7), "lb2", pytest.approx(3.95)),  # type: ignore[arg-type]
        "external6": rp.VipTimes(VIP6B, pytest.approx(0.72), "lb2", None),  # type: ignore[arg-type]
    }
    assert f.ipv6_lanes == {"apiserver6": "apiserver", "console6": "console"}
    assert f.outage_s["apiserver"] == pytest.approx(0.61, abs=0.011)
    assert f.outage_s["apiserver6"] == pytest.approx(0.71, abs=0.011)
    assert f.failed == {"apiserver": 60, "apiserver6": 70, "console6": 72}
    assert f.old_last_advert_s == pytest.approx(-0.05)  # the link-local advert at 9.95
    assert f.old_holder_answers == 1  # the SYN-ACK after the IPv6 VIP's own NA only
    assert f.garps_after_restore == 2  # the GARP and the NA of the failback

    rows = rp.table([f])
    assert [(r.frontend, r.family) for r in rows] == [
        ("apiserver", 4),
        ("apiserver", 6),
        ("console", 6),
    ]
    assert rows[0].takeover == pytest.approx((0.61,) * 3)
    assert rows[1].takeover == pytest.approx((0.7,) * 3)  # the first IPv6 VIP's NA
    header = rp.table_header(rows)
    assert header[:3] == ["fault", "frontend", "family"] and len(header) == 16
    cells = rp.table_lines(rows)
    assert all(len(c) == len(header) for c in cells)
    assert [c[2] for c in cells] == ["IPv4", "IPv6", "IPv6"]
    line = _round_line(f)
    assert "takeover GARP 0.610 s by lb2" in line
    assert "internal6 takeover NA 0.700 s by lb2" in line
    assert "old holder's NA after the restore 3.950 s" in line


def test_dual_stack_json_carries_the_family_and_round_trips() -> None:
    r = dual_round()
    f = rp.figures(r)
    doc = json.loads(json.dumps(rp.document([r], [f], {"rate": 100}, [])))
    assert [(t["frontend"], t["family"]) for t in doc["table"]] == [
        ("apiserver", 4),
        ("apiserver", 6),
        ("console", 6),
    ]
    (rd,) = doc["rounds"]
    assert rd["figures"]["ipv6_vips"]["internal6"]["takeover_s"] == pytest.approx(0.7)
    assert rd["figures"]["ipv6_lanes"] == {"apiserver6": "apiserver", "console6": "console"}
    assert {p["kind"] for p in rd["packets"]} == {"advert", "garp", "na", "synack"}
    assert rp.figures(record_from_dict(rd)) == f
    # the timeline: a lane per frontend and family, NAs beside the GARPs
    assert plot.lanes_of(r) == ["apiserver", "apiserver6", "console6", "adverts", "garps+nas"]
    assert plot.timeline_png([r], [f])[:8] == b"\x89PNG\r\n\x1a\n"


def test_ipv6_only_round_takes_over_by_the_na() -> None:
    r = dual_round()
    r.vips = {"internal6": VIP6}
    r.frontends = {"apiserver6": "internal6"}
    r.probes = [p for p in r.probes if p.frontend == "apiserver6"]
    r.holders_before = r.holders_end = {"internal6": ["lb1"]}
    r.polls = [(11.0, {"internal6": ["lb2"]})]
    f = rp.figures(r)
    assert f.takeover_s == pytest.approx(0.7) and f.new_holder == "lb2"
    assert f.failback_s == pytest.approx(3.95)
    assert f.vip_moved and f.old_holder_answers == 1
    (row,) = rp.table([f])
    assert (row.frontend, row.family, row.takeover) == ("apiserver", 6, pytest.approx((0.7,) * 3))
    line = _round_line(f)
    assert line.startswith("graceful #1 on lb1: takeover NA 0.700 s by lb2")
    assert "old holder's NA after the restore 3.950 s" in line


def test_ipv4_rounds_have_no_ipv6_figures_and_the_table_as_before() -> None:
    r = dual_round()
    r.vips = {"internal": VIP4}
    r.frontends = {"apiserver": "internal"}
    r.packets = [p for p in r.packets if ":" not in p.src and ":" not in p.addr]
    f = rp.figures(r)
    assert f.ipv6_vips == {} and f.ipv6_lanes == {}
    rows = rp.table([f])
    assert rp.table_header(rows) == rp.TABLE_HEADER and rows[0].family == 4


# ------------------------------------------------------------------------- lanes, rogue


def test_every_vip_address_of_a_frontend_is_a_lane() -> None:
    dual = load_cluster(CASES / "dual-stack" / "halb.yaml")
    assert lanes_of(dual) == {
        "apiserver": ("apiserver", "172.20.1.250", "internal"),
        "apiserver6": ("apiserver", "fd00:20:1::250", "internal6"),
        "console": ("console", "172.20.1.251", "external"),
        "console6": ("console", "fd00:20:1::251", "external6"),
    }
    ts = {t.frontend: t for t in targets_of(dual)}
    assert ts["apiserver6"].tls and ts["apiserver6"].path == "/readyz"
    assert ts["console6"].path == "/" and ts["console6"].address == "fd00:20:1::251"
    six = load_cluster(CASES / "ipv6-only" / "halb.yaml")
    assert lanes_of(six) == {
        "apiserver6": ("apiserver", "fd00:20:1::250", "internal6"),
        "console6": ("console", "fd00:20:1::251", "external6"),
    }


def test_rogue_faults_forge_only_ipv4_vips_and_refuse_an_ipv6_only_cluster() -> None:
    dual = load_cluster(CASES / "dual-stack" / "halb.yaml")
    assert [a for _, a in rogue_vips(dual, ["arp-spoof"])] == ["172.20.1.250", "172.20.1.251"]
    assert rogue_vips(dual, ["link"]) == ()
    six = load_cluster(CASES / "ipv6-only" / "halb.yaml")
    with pytest.raises(InputError, match="every VIP of this cluster is IPv6"):
        Drill(six, Settings(("rogue-vrrp-v3",), 1, 100, 0.5, None))
    assert KINDS[Fault.ROGUE_V3].rogue is not None


def test_cli_refuses_rogue_faults_on_ipv6_only_with_exit_2() -> None:
    r = CliRunner().invoke(
        app,
        ["test-failover", "-c", str(CASES / "ipv6-only" / "halb.yaml"), "--fault", "arp-spoof"],
    )
    assert r.exit_code == 2, r.output
    assert "--fault arp-spoof: the rogue faults forge IPv4 frames" in r.output
    assert "Traceback" not in r.output


# ------------------------------------------------------------------------ probes, nft


def test_probes_over_ipv6_send_a_bracketed_host() -> None:
    """A real HTTP exchange over ::1: the Host header of an IPv6 probe is [addr]."""
    srv = socket.socket(socket.AF_INET6)
    try:
        srv.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv.listen(64)
    srv.settimeout(0.05)
    port, hosts, stop = srv.getsockname()[1], set(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            with c:
                head = c.recv(1024).decode()
                host = next(ln[6:] for ln in head.split("\r\n") if ln.startswith("Host: "))
                hosts.add(host)
                code = b"200 OK" if host == "[::1]" else b"400 Bad"
                c.sendall(b"HTTP/1.1 " + code + b"\r\nContent-Length: 0\r\n\r\n")

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        load = Load(
            [Target("console6", "::1", port, tls=False, path="/")], rate=20, timeout=1, limit=5
        )
        load.start()
        threading.Event().wait(0.5)
        got = load.stop()
    finally:
        stop.set()
        th.join(2)
        srv.close()
    assert got and all(p.ok and p.frontend == "console6" for p in got), got[:3]
    assert hosts == {"[::1]"}


def test_partition_drops_vrrp_of_both_families_and_heals(tmp_path: Path) -> None:
    """The partition's own script in a network namespace of its own (nothing else there)."""
    need("nft", "unshare")
    script = KINDS[Fault.PARTITION].script
    steps = """
sh -c "$1" fault inject && nft list table inet halb_drill
echo ---
sh -c "$1" fault restore; nft list tables
"""
    p = subprocess.run(
        ["unshare", "-n", "sh", "-c", steps, "step", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if p.returncode != 0 and "Operation not permitted" in p.stderr:
        pytest.skip("no permission for a network namespace here")
    assert p.returncode == 0, p.stderr
    injected, healed = p.stdout.split("---")
    assert "ip protocol vrrp drop" in injected
    assert "meta nfproto ipv6 meta l4proto vrrp drop" in injected
    assert "halb_drill" not in healed


def test_a_frontend_named_like_an_ipv6_lane_is_refused(tmp_path: Path) -> None:
    shutil.copy(CASES / "dual-stack" / "hosts.ini", tmp_path / "hosts.ini")
    spec = (CASES / "dual-stack" / "halb.yaml").read_text() + (
        "frontends:\n"
        "  apiserver: {port: 6443, backends: kube-master, backend_port: 6443}\n"
        "  apiserver6: {vip: external, port: 7443, backends: kube-master, backend_port: 6443}\n"
    )
    (tmp_path / "halb.yaml").write_text(spec)
    with pytest.raises(InputError, match=r"^frontends\.apiserver6: the drill names the probes"):
        lanes_of(load_cluster(tmp_path / "halb.yaml"))


def test_link_fault_keeps_the_ipv6_addresses_and_the_sysctl() -> None:
    """The link script on a veth in a network namespace of its own, with a private /run:
    the IPv6 address set down with the link is there again when it comes up (without
    keep_addr_on_down the kernel flushes it, shown first), and the sysctl is as before."""
    need("unshare", "ip")
    script = KINDS[Fault.LINK].script
    steps = """
mount --make-rprivate / && mount -t tmpfs tmpfs /run || exit 9
k=/proc/sys/net/ipv6/conf/v0/keep_addr_on_down
ip link add v0 type veth peer name v1 && ip link set v1 up && ip link set v0 up
ip addr add 2001:db8::1/64 dev v0 nodad
ip link set v0 down && ip link set v0 up
echo "plain: $(ip -6 -o addr show dev v0 scope global | wc -l)"
ip addr add 2001:db8::1/64 dev v0 nodad
sh -c "$1" fault inject v0
echo "down: $(ip -o link show v0 | grep -c 'state DOWN') keep $(cat $k)"
sh -c "$1" fault restore v0; echo "rc $?"
echo "up: $(ip -6 -o addr show dev v0 scope global | grep -c 2001:db8::1)"
echo "keep $(cat $k) left $(ls /run/halb-drill | wc -l)"
sh -c "$1" fault restore v0; echo "again rc $?"
"""
    p = subprocess.run(
        ["unshare", "-n", "-m", "sh", "-c", steps, "step", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if p.returncode == 9 or "Operation not permitted" in p.stderr:
        pytest.skip("no permission for a network and mount namespace here")
    assert p.stdout.split("\n")[:-1] == [
        "plain: 0",  # what an interface set down does to its IPv6 addresses
        "down: 1 keep 1",
        "rc 0",
        "up: 1",
        "keep 0 left 0",
        "again rc 0",
    ], p.stdout + p.stderr
