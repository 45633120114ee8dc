"""halb.probe: classification and summary (pure), and the probes against real local sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from halb import probe as pr
from halb.probe import Level, ProbeResult, ProbeTarget, Status, Via
from tests.needs import need


def _t(
    name: str, via: Via = Via.DIRECT, fe: str = "apiserver", check: str = "readyz"
) -> ProbeTarget:
    return ProbeTarget(fe, check, via, name, "10.0.0.1", 6443)


def _r(
    name: str,
    status: Status,
    *,
    via: Via = Via.DIRECT,
    fe: str = "apiserver",
    check: str = "readyz",
    connected: bool | None = None,
    code: int | None = None,
) -> ProbeResult:
    if connected is None:
        connected = status not in (Status.REFUSED, Status.TIMEOUT, Status.UNREACHABLE)
    return ProbeResult(_t(name, via, fe, check), status, 5.0, connected, code, "")


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 503 Service Unavailable\r\n", 503),
        (b"HTTP/2 401\r\n", 401),
        (b"", None),
        (b"SSH-2.0-OpenSSH_9.2\r\n", None),
        (b"HTTP/1.1 abc\r\n", None),
        (b"HTTP/1.1 999 nope\r\n", None),
    ],
)
def test_parse_status_line(line: bytes, code: int | None) -> None:
    assert pr.parse_status_line(line) == code


@pytest.mark.parametrize(
    ("check", "code", "status"),
    [
        ("readyz", 200, Status.READY),
        ("readyz", 401, Status.AUTH_REQUIRED),
        ("readyz", 403, Status.AUTH_REQUIRED),
        ("readyz", 500, Status.NOT_READY),
        ("readyz", 503, Status.NOT_READY),
        ("readyz", 404, Status.NOT_READY),
        ("http", 200, Status.READY),
        ("http", 302, Status.READY),
        ("http", 404, Status.READY),
        ("http", 500, Status.NOT_READY),
        ("http", 503, Status.NOT_READY),
    ],
)
def test_classify(check: str, code: int, status: Status) -> None:
    assert pr.classify(check, code)[0] is status


def test_request_has_path_and_host_header() -> None:
    req = pr.http_request("readyz", "10.0.0.5", 6443).decode()
    assert req.startswith("GET /readyz HTTP/1.1\r\n")
    assert "\r\nHost: 10.0.0.5:6443\r\n" in req
    assert req.endswith("\r\n\r\n")
    assert (
        pr.http_request("http", "fd00::1", 80)
        .decode()
        .startswith("GET / HTTP/1.1\r\nHost: [fd00::1]:80")
    )


def test_plan_probes_every_backend_then_the_vip() -> None:
    b = SimpleNamespace
    cluster = SimpleNamespace(
        frontends=(
            b(name="apiserver", check="readyz", vip_name="internal", address="10.0.0.253",
              address6=None, port=6443, backends=(b(name="m1", address="10.0.0.21", port=6443),
                                   b(name="m2", address="10.0.0.22", port=6443))),
            b(name="console", check="http", vip_name="external", address="10.0.0.254", port=30880,
              address6=None, backends=(b(name="n1", address="10.0.0.31", port=30880),)),
        )
    )  # fmt: skip
    targets = pr.plan_probes(cluster)  # type: ignore[arg-type]
    assert [(t.frontend, t.via, t.name, t.address, t.port) for t in targets] == [
        ("apiserver", Via.DIRECT, "m1", "10.0.0.21", 6443),
        ("apiserver", Via.DIRECT, "m2", "10.0.0.22", 6443),
        ("apiserver", Via.VIP, "internal", "10.0.0.253", 6443),
        ("console", Via.DIRECT, "n1", "10.0.0.31", 30880),
        ("console", Via.VIP, "external", "10.0.0.254", 30880),
    ]


def test_all_ready_is_ok_and_exit_0() -> None:
    s = pr.summarize(
        [_r("m1", Status.READY), _r("m2", Status.READY), _r("internal", Status.READY, via=Via.VIP)]
    )
    (fe,) = s.frontends
    assert fe.level is Level.OK and s.exit_status == 0
    assert fe.healthy_backends == 2 and fe.message.startswith("2/2 backends healthy")


def test_one_master_not_ready_is_a_warning_naming_it() -> None:
    s = pr.summarize(
        [
            _r("m1", Status.READY),
            _r("m2", Status.NOT_READY, code=500),
            _r("internal", Status.READY, via=Via.VIP),
        ]
    )
    (fe,) = s.frontends
    assert fe.level is Level.WARN and s.exit_status == 0
    assert "m2 not ready" in fe.message


def test_all_refused_before_install_reads_calmly() -> None:
    results = [
        _r("m1", Status.REFUSED),
        _r("m2", Status.REFUSED),
        _r("internal", Status.ERROR, via=Via.VIP, connected=True),
    ]
    s = pr.summarize(results)
    (fe,) = s.frontends
    assert fe.level is Level.PENDING
    assert "no apiserver answering yet (expected before install)" in fe.message
    assert "nothing behind it yet" in fe.message
    assert s.exit_status == 1
    assert pr.summarize(results, before_install=True).exit_status == 0


def test_all_refused_and_vip_unreachable_still_fails() -> None:
    s = pr.summarize(
        [_r("m1", Status.REFUSED), _r("internal", Status.TIMEOUT, via=Via.VIP)], before_install=True
    )
    assert s.frontends[0].level is Level.FAIL and s.exit_status == 1


def test_all_down_but_not_all_refused_is_a_failure() -> None:
    s = pr.summarize(
        [
            _r("m1", Status.REFUSED),
            _r("m2", Status.TIMEOUT),
            _r("internal", Status.TIMEOUT, via=Via.VIP),
        ]
    )
    fe = s.frontends[0]
    assert fe.level is Level.FAIL and fe.message.startswith("no healthy backend")
    assert "m2 timed out" in fe.message


def test_console_all_refused_is_not_pending() -> None:
    s = pr.summarize(
        [_r("n1", Status.REFUSED, fe="console", check="http"),
         _r("external", Status.NOT_READY, via=Via.VIP, fe="console", check="http", code=503)]
    )  # fmt: skip
    assert s.frontends[0].level is Level.FAIL


def test_vip_not_held_fails_with_a_hint() -> None:
    s = pr.summarize([_r("m1", Status.READY), _r("internal", Status.TIMEOUT, via=Via.VIP)])
    fe = s.frontends[0]
    assert fe.level is Level.FAIL and s.exit_status == 1
    assert "halb status" in fe.message


def test_auth_off_counts_as_healthy_with_a_note() -> None:
    s = pr.summarize(
        [
            _r("m1", Status.AUTH_REQUIRED, code=401),
            _r("internal", Status.AUTH_REQUIRED, via=Via.VIP),
        ]
    )
    fe = s.frontends[0]
    assert fe.level is Level.WARN and s.exit_status == 0
    assert "anonymous auth off" in fe.message


def test_json_document_shape() -> None:
    s = pr.summarize(
        [_r("m1", Status.READY, code=200), _r("internal", Status.READY, via=Via.VIP),
         _r("n1", Status.READY, fe="console", check="http"),
         _r("external", Status.TIMEOUT, via=Via.VIP, fe="console", check="http")],
        timeout=2.0, elapsed_ms=12.5,
    )  # fmt: skip
    doc = pr.summary_document(s)
    assert doc["version"] == 1 and doc["ok"] is False and doc["exit_status"] == 1
    assert [f["name"] for f in doc["frontends"]] == ["apiserver", "console"]
    api = doc["frontends"][0]
    assert api["level"] == "ok" and api["total_backends"] == 1
    assert api["backends"][0] == {
        "name": "m1", "address": "10.0.0.1", "family": 4, "port": 6443, "via": "direct",
        "status": "ready",
        "healthy": True, "connected": True, "http_status": 200, "latency_ms": 5.0, "detail": "",
    }  # fmt: skip
    assert doc["frontends"][1]["through_vip"]["status"] == "timeout"


# ------------------------------------------------------------------ real sockets (loopback)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need("openssl")
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=test",
         "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    yield d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def servers(cert: Path) -> AsyncIterator[dict[str, int]]:
    """Real local servers: TLS /readyz answering 200/500/401, HTTP 200/503, one that hangs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert / "c.pem", cert / "k.pem")
    seen: list[bytes] = []

    def answer(code: int):  # type: ignore[no-untyped-def]
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                seen.append(await r.readuntil(b"\r\n\r\n"))
                w.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
                await w.drain()
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                w.close()

        return handle

    async def hang(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()  # until the client goes away; never answers

    made = {
        "ready": await asyncio.start_server(answer(200), "127.0.0.1", 0, ssl=ctx),
        "notready": await asyncio.start_server(answer(500), "127.0.0.1", 0, ssl=ctx),
        "auth": await asyncio.start_server(answer(401), "127.0.0.1", 0, ssl=ctx),
        "http": await asyncio.start_server(answer(200), "127.0.0.1", 0),
        "http503": await asyncio.start_server(answer(503), "127.0.0.1", 0),
        "plain": await asyncio.start_server(answer(200), "127.0.0.1", 0),  # no TLS
        "hang": await asyncio.start_server(hang, "127.0.0.1", 0),
    }
    ports = {k: int(s.sockets[0].getsockname()[1]) for k, s in made.items()}
    ports["refused"] = _free_port()
    try:
        yield ports
    finally:
        for s in made.values():
            s.close()


def _target(name: str, port: int, check: str = "readyz") -> ProbeTarget:
    return ProbeTarget("fe", check, Via.DIRECT, name, "127.0.0.1", port)


def test_run_probes_real_sockets(cert: Path) -> None:
    async def main() -> tuple[tuple[ProbeResult, ...], float]:
        async with servers(cert) as ports:
            targets = [
                _target("ready", ports["ready"]),
                _target("notready", ports["notready"]),
                _target("auth", ports["auth"]),
                _target("http", ports["http"], "http"),
                _target("http503", ports["http503"], "http"),
                _target("plain", ports["plain"]),  # readyz check against a non-TLS server
                _target("hang", ports["hang"], "http"),
                _target("refused", ports["refused"]),
                _target("tcp", ports["hang"], "tcp"),
            ]
            loop = asyncio.get_running_loop()
            start = loop.time()
            res = await pr.run_probes(targets, timeout=0.5, concurrency=4)
            return res, loop.time() - start

    results, elapsed = asyncio.run(main())
    by = {r.target.name: r for r in results}
    assert [r.target.name for r in results][:2] == ["ready", "notready"]  # target order kept
    assert by["ready"].status is Status.READY and by["ready"].http_status == 200
    assert by["notready"].status is Status.NOT_READY and by["notready"].http_status == 500
    assert by["auth"].status is Status.AUTH_REQUIRED
    assert by["http"].status is Status.READY
    assert by["http503"].status is Status.NOT_READY
    # a TLS hello to a plain HTTP server: it waits for a request line that never comes
    assert by["plain"].status is Status.TIMEOUT and by["plain"].connected
    assert by["hang"].status is Status.TIMEOUT and by["hang"].connected
    assert "connected, no answer" in by["hang"].detail
    assert 450 <= by["hang"].latency_ms < 1500
    assert by["refused"].status is Status.REFUSED and not by["refused"].connected
    assert by["tcp"].status is Status.READY
    # 9 probes, 4 at a time, only one of them waits the whole 0.5 s timeout
    assert elapsed < 1.5
