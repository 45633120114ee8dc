"""Bounded client load through the VIPs: many short, overlapping, timestamped probes.

Each probe is a new TCP connection (TLS for the apiserver frontend), one GET and its
status line, with its own short timeout. Probes start every 1/rate seconds whatever the
earlier ones are doing, so a probe stuck in a SYN retransmit never hides the moment the
path comes back: the resolution of a gap is 1/rate. The load runs on its own event loop
in a thread, bounded in time (`limit`) and in probes in flight (`max_inflight`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import ssl
import threading
import time
from dataclasses import astuple, dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from halb.drill.model import Probe


@dataclass(frozen=True)
class Target:
    frontend: str  # the lane its probes go by: the frontend, "apiserver6" over IPv6
    address: str
    port: int
    tls: bool
    path: str | None  # "/readyz" on the apiserver, "/" on the console, None: connect only


def _client_tls() -> ssl.SSLContext:
    # The drill measures reachability, not identity: the apiserver's certificate is the
    # cluster's own, and an outage must not be hidden behind a verification failure.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return "closed"
    if isinstance(exc, OSError):
        return exc.strerror.lower() if exc.strerror else "os error"
    return type(exc).__name__


async def probe_once(t: Target, timeout: float, tls: ssl.SSLContext | None) -> tuple[bool, str]:
    async def go() -> tuple[bool, str]:
        reader, writer = await asyncio.open_connection(
            t.address, t.port, ssl=tls if t.tls else None, server_hostname="" if t.tls else None
        )
        if t.path is None:
            writer.close()
            return True, ""
        try:
            host = f"[{t.address}]" if ":" in t.address else t.address  # RFC 7230: IPv6 in []
            req = f"GET {t.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            writer.write(req.encode())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            return False, "closed" if not line else "bad answer"
        code = parts[1].decode("ascii", "replace")
        return (code == "200"), ("" if code == "200" else f"http {code}")

    try:
        return await asyncio.wait_for(go(), timeout)
    except Exception as e:
        return False, classify(e)


class _Flag(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...


class Load:
    """`start()`, then `stop()` returns every probe; never runs past `limit` seconds."""

    def __init__(
        self,
        targets: list[Target],
        *,
        rate: float,
        timeout: float,
        limit: float,
        max_inflight: int = 2000,
    ) -> None:
        self.targets = targets
        self.rate = rate
        self.timeout = timeout
        self.limit = limit
        self.max_inflight = max_inflight
        self.probes: list[Probe] = []
        self.overloaded = 0  # probes not started because too many were in flight
        self._stop: _Flag = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Probe]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 10)
        return sorted(self.probes, key=lambda p: p.start)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        tls = _client_tls()
        inflight: set[asyncio.Task[None]] = set()
        interval = 1.0 / self.rate
        end = time.monotonic() + self.limit
        nxt = time.monotonic()

        async def one(t: Target) -> None:
            start = time.time()
            ok, err = await probe_once(t, self.timeout, tls)
            self.probes.append(Probe(t.frontend, start, time.time(), ok, err))

        while not self._stop.is_set() and time.monotonic() < end:
            for t in self.targets:
                if len(inflight) >= self.max_inflight:
                    self.overloaded += 1
                    continue
                task = asyncio.create_task(one(t))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            nxt += interval
            delay = nxt - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                nxt = time.monotonic()  # behind: do not burst to catch up
                await asyncio.sleep(0)
        if inflight:
            await asyncio.wait(inflight, timeout=self.timeout + 1)


def _child(args: tuple[Any, ...], stop: _Flag, ready: _Flag, conn: Connection) -> None:
    targets, rate, timeout, limit, max_inflight = args
    load = Load(targets, rate=rate, timeout=timeout, limit=limit, max_inflight=max_inflight)
    load._stop = stop
    ready.set()
    load._run()
    conn.send(([astuple(p) for p in load.probes], load.overloaded))
    conn.close()


class ProcessLoad:
    """The same load in a process of its own: the probes' TLS work then does not compete
    with the drill's own threads (holder polls, captures) for the interpreter lock, which
    would delay both the probes and the polls on a busy machine."""

    def __init__(
        self,
        targets: list[Target],
        *,
        rate: float,
        timeout: float,
        limit: float,
        max_inflight: int = 2000,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.timeout = timeout
        self.overloaded = 0
        self._stop = ctx.Event()
        self._ready = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        args = (targets, rate, timeout, limit, max_inflight)
        self._proc = ctx.Process(
            target=_child, args=(args, self._stop, self._ready, send), daemon=True
        )

    def start(self) -> None:
        self._proc.start()
        self._ready.wait(30)

    def stop(self) -> list[Probe]:
        self._stop.set()
        probes: list[Probe] = []
        if self._recv.poll(self.timeout + 30):
            rows, self.overloaded = self._recv.recv()
            probes = [Probe(*r) for r in rows]
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        return sorted(probes, key=lambda p: p.start)
