"""Stand-ins for kube-apiserver (TLS, /readyz /livez /healthz) and the KubeSphere console.

Run inside a lab host: `python3 -m halb.lab.fakeapi --name master1 --apiserver ADDR:6443
--cert C --key K` or `--console ADDR:30880`. A control file `CONTROL_DIR/<endpoint>`
holding a status code (500, 401, ...) changes that endpoint's answer, read on every
request, so tests can make a backend "not ready" without restarting anything.

Every answer closes its connection, unless `--keep-alive` is given: then a connection
serves requests until the client asks to close or stays idle for 10 s (the data-plane
benchmark starts such a console of its own, on another port, to compare keep-alive paths).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

# halb.paths.LAB_CONTROL_DIR: this file also runs as a plain script on systemd lab hosts,
# where halb is not importable (test_lab_topology checks that the two agree)
DEFAULT_CONTROL_DIR = Path("/run/halb-lab")
HEALTH_PATHS = ("/readyz", "/livez", "/healthz")


def status_from(control: Path, default: int = 200) -> int:
    try:
        return int(control.read_text().strip() or default)
    except (OSError, ValueError):
        return default


IDLE_TIMEOUT = 10.0


def response(code: int, body: str, close: bool = True) -> bytes:
    reason = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Status"
    data = body.encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + data


NAME_PATH = "/halb-lab/name"  # which stand-in answered: tests tell backends apart by it


def apiserver_answer(path: str, control_dir: Path, name: str = "") -> tuple[int, str]:
    path = path.split("?", 1)[0]
    if path == NAME_PATH:
        return 200, f"apiserver {name}\n"
    if path in HEALTH_PATHS:
        code = status_from(control_dir / path.lstrip("/"))
        if code == 200:
            return 200, "ok"
        if code == 401:
            return 401, "Unauthorized\n"
        return code, f"[-]{path.lstrip('/')} check failed\n"
    return 404, "404 page not found\n"


def console_answer(name: str, control_dir: Path) -> tuple[int, str]:
    code = status_from(control_dir / "console")
    return code, f"console {name}\n" if code == 200 else f"console {name} failing\n"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bool] | None:
    """The request's path, and whether the client wants the connection closed after it
    (`Connection: close`, or HTTP/1.0 without keep-alive); None at the end of the stream."""
    line = await asyncio.wait_for(reader.readline(), timeout=IDLE_TIMEOUT)
    parts = line.decode("latin-1").split()
    if len(parts) < 2:
        return None
    close = parts[2:3] == ["HTTP/1.0"]
    while True:  # headers; bodies are not expected on GET
        h = await asyncio.wait_for(reader.readline(), timeout=10)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        if name.strip().lower() == "connection":
            close = value.strip().lower() != "keep-alive" if close else "close" in value.lower()
    return parts[1], close


async def read_request_path(reader: asyncio.StreamReader) -> str | None:
    req = await read_request(reader)
    return req[0] if req else None


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def make_handler(kind: str, name: str, control_dir: Path, keep_alive: bool = False) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    return
                path, close = req
                close = close or not keep_alive
                if kind == "apiserver":
                    code, body = apiserver_answer(path, control_dir, name)
                else:
                    code, body = console_answer(name, control_dir)
                writer.write(response(code, body, close))
                await writer.drain()
                if close:
                    return
        except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return handle


def split_addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


async def serve(args: argparse.Namespace) -> None:
    servers = []
    if args.apiserver:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        host, port = split_addr(args.apiserver)
        servers.append(
            await asyncio.start_server(
                make_handler("apiserver", args.name, args.control_dir),
                host,
                port,
                ssl=ctx,
                reuse_address=True,
                backlog=512,
            )
        )
    if args.console:
        host, port = split_addr(args.console)
        servers.append(
            await asyncio.start_server(
                make_handler("console", args.name, args.control_dir, args.keep_alive),
                host,
                port,
                reuse_address=True,
                backlog=512,
            )
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="halb.lab.fakeapi")
    p.add_argument("--name", required=True, help="host name shown by the console")
    p.add_argument("--apiserver", metavar="ADDR:PORT")
    p.add_argument("--console", metavar="ADDR:PORT")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--control-dir", type=Path, default=DEFAULT_CONTROL_DIR)
    p.add_argument(
        "--keep-alive", action="store_true", help="console: keep connections open between requests"
    )
    args = p.parse_args(argv)
    if args.apiserver and not (args.cert and args.key):
        p.error("--apiserver needs --cert and --key")
    if not (args.apiserver or args.console):
        p.error("nothing to serve: give --apiserver and/or --console")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
