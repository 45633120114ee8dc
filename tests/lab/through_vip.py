"""Helpers of the co-located lab tests: requests through a VIP from a lab host, and the
VIPs halb's redirect sends to HAProxy on a host."""

from __future__ import annotations

from halb.lab import Lab
from halb.redirect import STATUS_ARGV, parse_status

# n requests through the VIP, each on a new connection; prints one body per line
MANY = """
import ssl, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for _ in range(n):
    try:
        print(urllib.request.urlopen(url, timeout=2, context=ctx).read().decode().strip())
    except Exception as e:
        print("ERR", type(e).__name__)
"""


def answers(lab: Lab, host: str, url: str, n: int) -> list[str]:
    """The body of each of n requests from `host` (`ERR ...` for a failed one)."""
    cp = lab.run(host, ["python3", "-c", MANY, url, str(n)], timeout=120)
    return cp.stdout.split("\n")[:-1]


def redirect_vips(lab: Lab, host: str) -> tuple[str, ...]:
    return parse_status(lab.run(host, STATUS_ARGV).stdout).vips


def assert_public_ports_balanced(lab: Lab, api_n: int, console_n: int) -> None:
    """`common.yaml` keeps port 6443, and through VIP:6443 and VIP:30880 every master and
    every master and node answers (the taskbox's requests)."""
    common = (lab.dir / "conf" / "common.yaml").read_text()
    assert f"address: {lab.vip_internal}\n  port: 6443" in common
    api = answers(lab, "taskbox", f"https://{lab.vip_internal}:6443/halb-lab/name", api_n)
    assert set(api) == {f"apiserver {m}" for m in lab.masters}, api
    console = answers(lab, "taskbox", f"http://{lab.vip_external}:30880/", console_n)
    assert set(console) == {f"console {h}" for h in lab.masters + lab.nodes}, console
