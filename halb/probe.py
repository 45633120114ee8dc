"""Backend and VIP probes: asyncio TCP / TLS / HTTP checks, their records and a summary.

The edge is `run_probes` (sockets); everything else here is pure: the plan of what to probe
(`plan_probes`), the classification of an answer (`classify`), and the words a user reads
(`summarize`, `summary_document`).
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from halb import kinds
from halb.choices import PROBE_CONCURRENCY, PROBE_TIMEOUT
from halb.errors import ExitStatus
from halb.level import Level

if TYPE_CHECKING:
    from halb.spec import Cluster

DEFAULT_TIMEOUT = PROBE_TIMEOUT
DEFAULT_CONCURRENCY = PROBE_CONCURRENCY
JSON_VERSION = 1


class Via(StrEnum):
    DIRECT = "direct"  # straight to the backend
    VIP = "vip"  # to the frontend on its VIP, through HAProxy


class Status(StrEnum):
    READY = "ready"  # /readyz 200, or an HTTP answer below 500, or (tcp check) connected
    AUTH_REQUIRED = "auth_required"  # /readyz 401/403: reachable, anonymous auth off
    NOT_READY = "not_ready"  # answered, but 5xx (or an unexpected status)
    REFUSED = "refused"  # nothing listening
    TIMEOUT = "timeout"  # no answer in time (black-holed, host down, or hung server)
    UNREACHABLE = "unreachable"  # no route / host unreachable
    ERROR = "error"  # TLS or protocol failure after connecting


HEALTHY = frozenset({Status.READY, Status.AUTH_REQUIRED})


@dataclass(frozen=True)
class ProbeTarget:
    frontend: str
    check: str  # "readyz" | "http" | "tcp"
    via: Via
    name: str  # backend name, or the VIP name ("internal"/"external")
    address: str
    port: int


@dataclass(frozen=True)
class ProbeResult:
    target: ProbeTarget
    status: Status
    latency_ms: float
    connected: bool  # the TCP handshake completed
    http_status: int | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.status in HEALTHY


@dataclass(frozen=True)
class FrontendSummary:
    name: str
    vip_name: str
    address: str
    port: int
    check: str
    level: Level
    message: str
    healthy_backends: int
    vip: ProbeResult | None
    backends: tuple[ProbeResult, ...]
    vip6: ProbeResult | None = None  # dual-stack: the probe through the frontend's IPv6 VIP


@dataclass(frozen=True)
class ProbeSummary:
    frontends: tuple[FrontendSummary, ...]
    exit_status: ExitStatus  # OK, or CHECK_FAILED: a frontend is failing (docs/probe-json.md)
    timeout: float
    elapsed_ms: float


# --------------------------------------------------------------------------- plan (pure)


def plan_probes(cluster: Cluster) -> tuple[ProbeTarget, ...]:
    """Every backend of every frontend directly, then each frontend through its VIP."""
    targets: list[ProbeTarget] = []
    for fe in cluster.frontends:
        for b in fe.backends:
            targets.append(ProbeTarget(fe.name, fe.check, Via.DIRECT, b.name, b.address, b.port))
        targets.append(ProbeTarget(fe.name, fe.check, Via.VIP, fe.vip_name, fe.address, fe.port))
        if fe.address6 is not None:
            targets.append(
                ProbeTarget(fe.name, fe.check, Via.VIP, fe.vip_name, fe.address6, fe.port)
            )
    return tuple(targets)


def http_request(check: str, address: str, port: int) -> bytes:
    path = "/readyz" if check == "readyz" else "/"
    host = f"[{address}]" if ":" in address else address
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: halb-probe\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def parse_status_line(line: bytes) -> int | None:
    """`HTTP/1.1 200 OK` -> 200; anything else -> None."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    code = int(parts[1])
    return code if 100 <= code <= 599 else None


def classify(check: str, code: int) -> tuple[Status, str]:
    if check == "readyz":
        if code == 200:
            return Status.READY, "HTTP 200"
        if code in (401, 403):
            return Status.AUTH_REQUIRED, f"HTTP {code}: reachable, anonymous auth off"
        if code >= 500:
            return Status.NOT_READY, f"HTTP {code}: not ready"
        return Status.NOT_READY, f"HTTP {code}: unexpected answer to /readyz"
    if code < 500:
        return Status.READY, f"HTTP {code}"
    return Status.NOT_READY, f"HTTP {code}: server error"


# --------------------------------------------------------------------------- probes (edge)


def _tls_context() -> ssl.SSLContext:
    # No verification: kube-apiserver certificates are self-signed, and here we only
    # ask whether the server is ready, we send no credentials.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _os_error(e: OSError) -> tuple[Status, str]:
    if isinstance(e, ConnectionRefusedError):
        return Status.REFUSED, "connection refused"
    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return Status.UNREACHABLE, e.strerror or "unreachable"
    return Status.ERROR, e.strerror or type(e).__name__


async def probe_one(target: ProbeTarget, timeout: float, tls: ssl.SSLContext) -> ProbeResult:
    start = time.perf_counter()
    connected = False
    code: int | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.address, target.port)
            connected = True
            if target.check == "tcp":
                status, detail = Status.READY, "TCP connect"
            else:
                if target.check == "readyz":
                    await writer.start_tls(tls)
                writer.write(http_request(target.check, target.address, target.port))
                line = await reader.readline()
                code = parse_status_line(line)
                if code is None:
                    status = Status.ERROR
                    detail = (
                        "connection closed without an HTTP answer"
                        if not line
                        else ("not an HTTP answer")
                    )
                else:
                    status, detail = classify(target.check, code)
    except TimeoutError:
        status = Status.TIMEOUT
        detail = (
            f"connected, no answer within {timeout:g} s"
            if connected
            else f"no answer within {timeout:g} s"
        )
    except ssl.SSLError as e:
        status, detail = Status.ERROR, f"TLS handshake failed: {e.reason or e}"
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
        status, detail = Status.ERROR, "connection closed by the server"
    except OSError as e:
        status, detail = _os_error(e)
    finally:
        if writer is not None:
            writer.transport.abort()
    latency = (time.perf_counter() - start) * 1000.0
    return ProbeResult(target, status, round(latency, 2), connected, code, detail)


async def run_probes(
    targets: Sequence[ProbeTarget],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[ProbeResult, ...]:
    """Probe every target, at most `concurrency` at a time; results in target order."""
    sem = asyncio.Semaphore(max(1, concurrency))
    tls = _tls_context()

    async def bounded(t: ProbeTarget) -> ProbeResult:
        async with sem:
            return await probe_one(t, timeout, tls)

    return tuple(await asyncio.gather(*(bounded(t) for t in targets)))


def probe(
    targets: Sequence[ProbeTarget],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[tuple[ProbeResult, ...], float]:
    """Run the probes; returns the results and the wall time in ms."""
    start = time.perf_counter()
    results = asyncio.run(run_probes(targets, timeout=timeout, concurrency=concurrency))
    return results, round((time.perf_counter() - start) * 1000.0, 1)


# --------------------------------------------------------------------------- summary (pure)

_WORDS = {
    Status.READY: "ready",
    Status.AUTH_REQUIRED: "reachable (anonymous auth off)",
    Status.NOT_READY: "not ready",
    Status.REFUSED: "refused",
    Status.TIMEOUT: "timed out",
    Status.UNREACHABLE: "unreachable",
    Status.ERROR: "error",
}


def describe(r: ProbeResult) -> str:
    return f"{r.target.name} {_WORDS[r.status]}" + (f" ({r.detail})" if r.detail else "")


def _vip_words(fe_name: str, vip: ProbeResult | None, pending: bool) -> tuple[bool, str]:
    """(VIP path healthy, words)."""
    if vip is None:
        return False, "no VIP probe"
    where = f"VIP {kinds.hostport(vip.target.address, vip.target.port)}"
    if vip.healthy:
        return True, f"{where} answers ({_WORDS[vip.status]}, {vip.latency_ms:.0f} ms)"
    if pending and vip.connected:
        return False, f"{where} accepts connections; nothing behind it yet"
    if not vip.connected:
        return False, (
            f"{where} {_WORDS[vip.status]}: is the VIP held by an LB host and HAProxy "
            "running? (halb status)"
        )
    return False, f"{where} {_WORDS[vip.status]} ({vip.detail})"


def summarize_frontend(
    name: str, results: Sequence[ProbeResult], *, before_install: bool = False
) -> FrontendSummary:
    backends = tuple(r for r in results if r.target.via is Via.DIRECT)
    vips = [r for r in results if r.target.via is Via.VIP]
    vip = vips[0] if vips else None
    vip6 = vips[1] if len(vips) > 1 else None  # a dual-stack frontend's IPv6 VIP
    first = (vip or backends[0]).target
    healthy = [r for r in backends if r.healthy]
    # Before the cluster is installed nothing listens on 6443 yet: every backend refuses.
    pending = (
        first.check == "readyz"
        and bool(backends)
        and all(r.status is Status.REFUSED for r in backends)
    )
    vip_ok, vip_words = _vip_words(name, vip, pending)
    if vip6 is not None:
        ok6, words6 = _vip_words(name, vip6, pending)
        vip_ok, vip_words = vip_ok and ok6, f"{vip_words}; {words6}"
    problems = [describe(r) for r in backends if not r.healthy]
    auth_off = [r.target.name for r in backends if r.status is Status.AUTH_REQUIRED]
    count = f"{len(healthy)}/{len(backends)} backends healthy"

    if pending:
        level = Level.PENDING
        message = f"no apiserver answering yet (expected before install); {vip_words}"
        if any(not v.connected for v in vips):
            level = Level.FAIL
    elif not backends:
        level, message = Level.FAIL, f"no backends configured; {vip_words}"
    elif not healthy:
        level = Level.FAIL
        message = f"no healthy backend: {'; '.join(problems)}; {vip_words}"
    elif not vip_ok:
        level = Level.FAIL
        message = f"{count}, but {vip_words}"
    elif problems or auth_off:
        level = Level.WARN
        parts = [count, *problems]
        if auth_off and not problems:
            parts.append(f"readiness unknown on {', '.join(auth_off)} (anonymous auth off)")
        message = "; ".join(parts) + f"; {vip_words}"
    else:
        level, message = Level.OK, f"{count}; {vip_words}"
    if level is Level.PENDING and before_install:
        level = Level.WARN
    return FrontendSummary(
        name=name,
        vip_name=first.name if vip else "",
        address=vip.target.address if vip else "",
        port=vip.target.port if vip else 0,
        check=first.check,
        level=level,
        message=message,
        healthy_backends=len(healthy),
        vip=vip,
        backends=backends,
        vip6=vip6,
    )


def exit_status(frontends: Iterable[FrontendSummary]) -> ExitStatus:
    """OK when every frontend works (ok or warn); CHECK_FAILED when one fails or is pending."""
    failing = any(f.level in (Level.FAIL, Level.PENDING) for f in frontends)
    return ExitStatus.CHECK_FAILED if failing else ExitStatus.OK


def summarize(
    results: Sequence[ProbeResult],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    elapsed_ms: float = 0.0,
    before_install: bool = False,
) -> ProbeSummary:
    order: list[str] = []
    grouped: dict[str, list[ProbeResult]] = {}
    for r in results:
        if r.target.frontend not in grouped:
            order.append(r.target.frontend)
            grouped[r.target.frontend] = []
        grouped[r.target.frontend].append(r)
    fes = tuple(summarize_frontend(n, grouped[n], before_install=before_install) for n in order)
    return ProbeSummary(fes, exit_status(fes), timeout, elapsed_ms)


def result_document(r: ProbeResult) -> dict[str, Any]:
    return {
        "name": r.target.name,
        "address": r.target.address,
        "family": 6 if ":" in r.target.address else 4,
        "port": r.target.port,
        "via": str(r.target.via),
        "status": str(r.status),
        "healthy": r.healthy,
        "connected": r.connected,
        "http_status": r.http_status,
        "latency_ms": r.latency_ms,
        "detail": r.detail,
    }


def summary_document(s: ProbeSummary) -> dict[str, Any]:
    """The `halb probe --json` document (docs/probe-json.md)."""
    return {
        "version": JSON_VERSION,
        "ok": s.exit_status == ExitStatus.OK,
        "exit_status": int(s.exit_status),
        "timeout_s": s.timeout,
        "elapsed_ms": s.elapsed_ms,
        "frontends": [
            {
                "name": f.name,
                "vip": f.vip_name,
                "address": f.address,
                "port": f.port,
                "check": f.check,
                "level": str(f.level),
                "message": f.message,
                "healthy_backends": f.healthy_backends,
                "total_backends": len(f.backends),
                "through_vip": result_document(f.vip) if f.vip else None,
                "through_vip6": result_document(f.vip6) if f.vip6 else None,
                "backends": [result_document(r) for r in f.backends],
            }
            for f in s.frontends
        ],
    }
