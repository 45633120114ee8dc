"""Shared parts of the lab benchmarks: the run header, statistics, wrk, README sections."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from halb import lab as labmod
from halb.lab import Lab

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
WRK_CACHE = HERE / "results" / "wrk"  # git-ignored


def header(argv: Sequence[str], wall: float | None = None) -> str:
    cmd = " ".join(["python3", *argv])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    took = f"; the whole run took {wall:.0f} s" if wall is not None else ""
    return (
        f"Run: `{cmd}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, CPython "
        f"{platform.python_version()}, {os.cpu_count()} CPU(s), Linux {platform.release()}, "
        f"load average {load} at the end (the machine is shared){took}."
    )


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        f = f"{{:.{digits}f}}"
        lo, hi = f.format(self.low), f.format(self.high)
        return f"{f.format(self.median)}{unit} ({lo}–{hi}, n={self.n})"


def spread(values: Sequence[float]) -> Spread:
    return Spread(statistics.median(values), min(values), max(values), len(values))


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def write_section(begin: str, end: str, text: str, readme: Path = README) -> None:
    doc = readme.read_text()
    if begin not in doc or end not in doc:
        sys.exit(f"{readme}: markers {begin} / {end} are missing")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}")


@contextmanager
def lab(prefix: str, **sizes: int) -> Iterator[Lab]:
    """A lab of its own (unique name and range), always taken down, also on SIGTERM or
    SIGINT (a background job starts with SIGINT ignored)."""
    labmod.require_root()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = labmod.pick_name(prefix)
    with tempfile.TemporaryDirectory(prefix=f"halb-bench-{name}-") as d:
        lab_dir = Path(d) / "lab"
        with labmod.running(name, lab_dir, **sizes) as lab_:
            yield lab_


# ------------------------------------------------------------------------------------ wrk


def wrk_command() -> tuple[list[str], dict[str, str]]:
    """wrk's argv prefix and environment: the installed one, else the Debian package
    unpacked (not installed) into bench/results/wrk."""
    found = shutil.which("wrk")
    if found:
        return [found], {}
    root = WRK_CACHE / "root"
    binary = root / "usr" / "bin" / "wrk"
    if not binary.exists():
        WRK_CACHE.mkdir(parents=True, exist_ok=True)
        print("wrk is not installed; unpacking Debian's wrk into", WRK_CACHE, file=sys.stderr)
        subprocess.run(
            ["apt-get", "download", "wrk", "libluajit2-5.1-2", "libluajit2-5.1-common"],
            cwd=WRK_CACHE,
            check=True,
            capture_output=True,
        )
        for deb in WRK_CACHE.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    libs = root / "usr" / "lib" / "x86_64-linux-gnu"
    return [str(binary)], {"LD_LIBRARY_PATH": str(libs)}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    errors: str  # wrk's own breakdown: connect, read, write, timeout
    non_2xx: int
    text: str

    @property
    def failed(self) -> int:
        return self.socket_errors + self.non_2xx


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(f"wrk latency {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> WrkResult:
    def num(pattern: str, default: str | None = None) -> str:
        m = re.search(pattern, text)
        if m is None:
            if default is None:
                raise ValueError(f"wrk output without {pattern!r}:\n{text}")
            return default
        return m.group(1)

    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"wrk output without a request count:\n{text}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        requests=int(m.group(1)),
        seconds=_ms(m.group(2) + m.group(3)) / 1000,
        rps=float(num(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(num(r"\n\s+50%\s+(\S+)")),
        p99_ms=_ms(num(r"\n\s+99%\s+(\S+)")),
        socket_errors=sum(int(x) for x in errors.groups()) if errors else 0,
        errors=errors.group(0).removeprefix("Socket errors: ") if errors else "none",
        non_2xx=int(num(r"Non-2xx or 3xx responses: (\d+)", "0")),
        text=text,
    )
