"""Drill parts without a lab: frame decoding, the timeline picture, CLI argument errors,
the probe client against a local server, and the fault scripts' text."""

from __future__ import annotations

import gzip
import json
import os
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from typer.testing import CliRunner

from halb.cli import app
from halb.drill import capture, faults, plot
from halb.drill import report as rp
from halb.drill.load import Load, ProcessLoad, Target
from halb.drill.model import record_from_dict
from halb.transport.base import Privilege
from halb.transport.local import LocalTransport

DATA = Path(__file__).parent.parent / "fixtures" / "drill"
runner = CliRunner()
MAC = "02:00:00:00:00:0b"


def line(frame: bytes, ts: float = 100.5) -> str:
    return f"{ts:.6f} {frame.hex()}"


def test_decode_vrrp_v2_and_v3_adverts() -> None:
    v2 = Ether(src=MAC) / IP(src="10.0.0.11", dst="10.0.0.12") / VRRP(vrid=51, priority=150)
    v3 = Ether(src=MAC) / IP(src="10.0.0.11", dst="10.0.0.12") / VRRPv3(vrid=52, priority=0)
    p2 = capture.parse_line("lb2", line(bytes(v2)))
    p3 = capture.parse_line("lb2", line(bytes(v3)))
    assert p2 is not None and p3 is not None
    assert (p2.kind, p2.src, p2.mac, p2.vrid, p2.prio, p2.ts) == (
        "advert",
        "10.0.0.11",
        MAC,
        51,
        150,
        100.5,
    )
    assert (p3.vrid, p3.prio) == (52, 0)


def test_decode_garp_ordinary_arp_and_synack() -> None:
    garp = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=MAC, psrc="10.0.0.253", pdst="10.0.0.253"
    )
    ask = Ether(src=MAC) / ARP(op=1, hwsrc=MAC, psrc="10.0.0.5", pdst="10.0.0.253")
    synack = Ether(src=MAC) / IP(src="10.0.0.253", dst="10.0.0.5") / TCP(sport=6443, flags="SA")
    syn = Ether(src=MAC) / IP(src="10.0.0.253", dst="10.0.0.5") / TCP(sport=6443, flags="S")
    g = capture.parse_line("client", line(bytes(garp)))
    assert g is not None and (g.kind, g.addr, g.mac) == ("garp", "10.0.0.253", MAC)
    assert capture.parse_line("client", line(bytes(ask))) is None
    s = capture.parse_line("client", line(bytes(synack)))
    assert s is not None and (s.kind, s.addr) == ("synack", "10.0.0.253")
    assert capture.parse_line("client", line(bytes(syn))) is None


def test_parse_lines_skips_ready_and_junk() -> None:
    garp = Ether(src=MAC) / ARP(hwsrc=MAC, psrc="10.0.0.253", pdst="10.0.0.253")
    got = capture.parse_lines("x", ["ready", "1.0 zz", "nonsense", line(bytes(garp)), "2.0 00"])
    assert [p.kind for p in got] == ["garp"]


def test_agent_argv_keeps_values_as_arguments() -> None:
    argv = capture.agent_argv("eth0", 30, ["10.0.0.253", "10.0.0.254"])
    assert argv[:2] == ["python3", "-c"] and argv[3:] == ["eth0", "30", "10.0.0.253,10.0.0.254"]
    compile(argv[2], "agent", "exec")  # the agent is valid Python


def read_png(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert (
            zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(">I", data[pos + 8 + n :][:4])[0]
        )
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    return size[0], size[1], zlib.decompress(idat)


def test_timeline_png_of_recorded_rounds_has_every_series() -> None:
    doc = json.loads(gzip.decompress((DATA / "lab-rounds.json.gz").read_bytes()))
    recs = [record_from_dict(r) for r in doc["rounds"]]
    figs = [rp.figures(r) for r in recs]
    w, h, raw = read_png(plot.timeline_png(recs, figs))
    assert w == plot.WIDTH and h > 100 * len(recs)
    assert len(raw) == h * (1 + 3 * w)
    colours = {raw[i : i + 3] for i in range(1, len(raw) - 3, 3)}
    for c in (plot.GREEN, plot.RED, plot.BLUE, plot.ORANGE, plot.PINK, plot.GAP):
        assert bytes(c) in colours, c
    assert plot.lanes_of(recs[0]) == ["apiserver", "console", "adverts", "garps"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fault", "reboot"], "--fault 'reboot': unknown fault"),
        (["--rounds", "0"], "--rounds 0"),
        (["--rate", "0"], "--rate 0"),
        (["--timeout", "0"], "--timeout 0"),
        (["--max-outage", "-1"], "--max-outage -1"),
        (["--max-failback-failed", "-1"], "--max-failback-failed -1: must be a number"),
        (["--max-failback-failed", "two"], "--max-failback-failed"),
        (["--json", "/nonexistent-dir/x.json"], "folder /nonexistent-dir does not exist"),
        (["-c", "/nonexistent-dir/halb.yaml"], "/nonexistent-dir/halb.yaml"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], needle: str) -> None:
    r = runner.invoke(app, ["test-failover", *args])
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert "Traceback" not in r.output


def test_fault_list_parsing() -> None:
    from halb.cli.drill import parse_faults

    assert parse_faults("all") == ("graceful", "kill", "haproxy", "link", "apiserver", "partition")
    assert parse_faults("link, kill,link") == ("link", "kill")


def test_marked_times_from_the_host_script() -> None:
    assert faults.parse_marked("t 10.25 r 12.5\n", "t") == 10.25
    assert faults.parse_marked("t 10.25 r 12.5\n", "r") == 12.5
    assert faults.parse_marked("t  r 12.5", "t") is None
    assert faults.parse_time("1795746393.990758\n") == pytest.approx(1795746393.990758)


class Server:
    """An HTTP server on 127.0.0.1 that answers 200, then refuses once `down` is set."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.down = threading.Event()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            with c:
                c.recv(1024)
                if self.down.is_set():
                    c.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("kind", [Load, ProcessLoad])
def test_load_records_successes_and_failures_with_times(kind: type[Load | ProcessLoad]) -> None:
    srv = Server()
    try:
        load = kind(
            [Target("console", "127.0.0.1", srv.port, tls=False, path="/")],
            rate=50,
            timeout=0.5,
            limit=5,
        )
        load.start()
        threading.Event().wait(0.5)
        srv.down.set()
        threading.Event().wait(0.3)
        srv.down.clear()
        threading.Event().wait(0.4)
        got = load.stop()
    finally:
        srv.stop.set()
    assert 40 <= len(got) <= 70
    assert all(p.end >= p.start for p in got)
    bad = [p for p in got if not p.ok]
    assert bad and {p.error for p in bad} == {"http 500"}
    oks = sorted(p.end for p in got if p.ok)
    assert 0.25 < rp.longest_gap(oks, oks[0], oks[-1]) < 0.6


# A harmless stand-in for a host-side fault: inject creates a file, restore removes it.
MARK = 'case "$1" in inject) : > "$2" ;; restore) rm -f "$2" ;; esac'


def test_host_timer_restores_by_itself(tmp_path: Path) -> None:
    """The timer on the host undoes a fault when the drill cannot (link cut, drill gone)."""
    t = LocalTransport("here", Privilege("none"))  # no root needed
    state, mark = tmp_path / "state", tmp_path / "broken"
    faults.arm(t, MARK, "f1", 0.6, str(mark), state_dir=str(state))
    deadline = time.monotonic() + 20  # generous: a loaded 2-core machine forks slowly
    while not mark.exists():
        assert time.monotonic() < deadline, "not injected"
        time.sleep(0.02)
    assert (state / "f1.timer").exists() and (state / "f1.t").exists()
    while mark.exists():
        assert time.monotonic() < deadline, "the timer did not restore"
        time.sleep(0.02)
    injected, restored = faults.disarm(t, MARK, "f1", str(mark), state_dir=str(state))
    assert injected is not None and restored is not None
    assert 0.5 < restored - injected < 10.0  # by the timer (0.6 s), not at once
    assert sorted(os.listdir(state)) == []


def test_disarm_restores_at_once_and_the_timer_stays_quiet(tmp_path: Path) -> None:
    t = LocalTransport("here", Privilege("none"))  # no root needed
    state, mark = tmp_path / "state", tmp_path / "broken"
    faults.arm(t, MARK, "f2", 1.0, str(mark), state_dir=str(state))
    time.sleep(0.3)
    assert mark.exists()
    injected, restored = faults.disarm(t, MARK, "f2", str(mark), state_dir=str(state))
    assert not mark.exists()
    assert injected is not None and restored is not None and restored - injected < 0.9
    mark.touch()  # a later fault; the disarmed timer must not undo it
    time.sleep(1.2)
    assert mark.exists()
