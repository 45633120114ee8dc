"""Run the daemons' own validators on rendered files (`haproxy -c`, `keepalived -t`).

keepalived -t needs the interfaces and the scripts the file names; it runs in a private
network and mount namespace with a stand-in interface and the rendered /etc/keepalived
bound in place, so the machine's own files and network stay untouched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CheckResult:
    host: str
    tool: str
    path: str
    ok: bool
    output: str


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def haproxy_check(host: str, cfg: Path) -> CheckResult:
    if shutil.which("haproxy") is None:
        return CheckResult(host, "haproxy -c", str(cfg), False, "haproxy is not installed")
    p = _run(["haproxy", "-c", "-f", str(cfg)])
    out = (p.stdout + p.stderr).strip()
    return CheckResult(host, "haproxy -c", str(cfg), p.returncode == 0, out)


def interfaces_of(conf: str) -> list[str]:
    """Interfaces a keepalived.conf names (`interface IF` lines), each once."""
    found = (ln.split() for ln in conf.splitlines())
    return sorted({w[1] for w in found if len(w) >= 2 and w[0] == "interface"})


def check_host_root(host: str, root: Path) -> list[CheckResult]:
    """Both validators on one host's rendered tree (root/etc/haproxy, root/etc/keepalived)."""
    return [
        haproxy_check(host, root / "etc/haproxy/haproxy.cfg"),
        keepalived_check(host, root / "etc/keepalived"),
    ]


def keepalived_check(host: str, etc_keepalived: Path) -> CheckResult:
    conf = etc_keepalived / "keepalived.conf"
    if shutil.which("keepalived") is None:
        return CheckResult(host, "keepalived -t", str(conf), False, "keepalived is not installed")
    if os.geteuid() != 0:
        return CheckResult(
            host,
            "keepalived -t",
            str(conf),
            False,
            "needs root: keepalived -t runs in a private network namespace with the interfaces",
        )
    links = " && ".join(
        f"ip link add name {shlex.quote(i)} type veth peer name halbchk{n}"  # `h` alone means help
        for n, i in enumerate(interfaces_of(conf.read_text()))
    )
    script = (
        f"{links or 'true'} && mount --bind {shlex.quote(str(etc_keepalived))} /etc/keepalived"
        " && exec keepalived -t -f /etc/keepalived/keepalived.conf"
    )
    p = _run(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script])
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0:
        # any non-zero exit is a failure: 3+ also covers warnings it would "fix up"
        out = f"keepalived -t exit {p.returncode}\n{out}".strip()
    return CheckResult(host, "keepalived -t", str(conf), p.returncode == 0, out)
