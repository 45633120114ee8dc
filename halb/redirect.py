"""halb's nftables redirect of the public frontend ports, as commands and parsers (pure).

Where an LB host is also a backend that holds a frontend's port on every address (the
apiserver's 0.0.0.0:6443 on a master, a NodePort on a node), HAProxy listens on an internal
port and the table `ip halb_redirect` (templates/redirect.nft.j2) sends VIP:port to it.
Its set `healthy` holds the VIPs whose HAProxy is healthy on the host: redirect.sh
(templates/redirect.sh.j2) fills it when the deploy loads the table and keeps it in step
with keepalived, whose notify script calls it at every state change. HAProxy's exit takes
every VIP out of the set at once (its service manager runs `redirect.sh exited`), so
traffic to them falls through to the host's own backend within milliseconds; the VRRP
instances stay as they are while that backend holds the public ports, and keepalived's
check (`redirect.sh check`) puts the VIPs back once HAProxy runs again, or FAULTs the
instance when HAProxy and the host's own backend are both down.

Facts relied on (nftables and kube-proxy, see the comment in redirect.nft.j2): NAT chains
are consulted in priority order for the first packet of a connection and the first mapping
wins; conntrack runs at -200, iptables' and kube-proxy's nat chains at dstnat (-100),
kube-proxy's nftables filter chains at dstnat - 10. Ours run at -120.
"""

from __future__ import annotations

from dataclasses import dataclass

from halb.paths import REDIRECT_NFT, REDIRECT_SCRIPT, REDIRECT_TABLE

# Load the table with the VIPs that are healthy now: one `nft -f` transaction.
LOAD_ARGV = ["sh", REDIRECT_SCRIPT, "load"]
_DROP = (
    f"command -v nft >/dev/null 2>&1 || exit 0; nft list table ip {REDIRECT_TABLE} "
    f">/dev/null 2>&1 || exit 0; nft delete table ip {REDIRECT_TABLE}"
)
# The table gone (a rolled-back deploy that created it).
DROP_ARGV = ["sh", "-c", _DROP]
# A deploy whose spec needs no redirect: drop the table a former spec left, which the
# former spec's redirect.nft still on the host tells; a host that never had one runs no nft.
STALE_ARGV = ["sh", "-c", f"[ -e {REDIRECT_NFT} ] || exit 0; {_DROP}"]
# Its rollback: the former table back, if the former spec had one.
RELOAD_IF_PRESENT_ARGV = [
    "sh",
    "-c",
    f"[ -e {REDIRECT_NFT} ] || exit 0; exec sh {REDIRECT_SCRIPT} load",
]
# Preflight: nft parses and the kernel accepts a NAT table of the redirect's shape (-c:
# checked, nothing added).
PROBE_ARGV = [
    "sh",
    "-c",
    "command -v nft >/dev/null 2>&1 || { echo 'nft: not found' >&2; exit 127; }; "
    "printf '%s\\n' 'table ip halb_probe { chain p { type nat hook prerouting priority -120; }; "
    "chain o { type nat hook output priority -120; }; }' | nft -c -f -",
]
# What `halb status` shows: the set's elements, or that the table is absent.
STATUS_ARGV = [
    "sh",
    "-c",
    f"command -v nft >/dev/null 2>&1 || {{ echo no-nft; exit 0; }}; "
    f"nft list set ip {REDIRECT_TABLE} healthy 2>/dev/null || echo absent",
]


def validate_argv(path: str) -> list[str]:
    """`nft -c`: parse and check against the kernel, change nothing."""
    return ["nft", "-c", "-f", path]


@dataclass(frozen=True)
class RedirectState:
    present: bool  # the table is loaded
    vips: tuple[str, ...]  # VIPs redirected to HAProxy now
    nft: bool = True  # nft exists on the host

    @property
    def text(self) -> str:
        if not self.nft:
            return "no nft"
        if not self.present:
            return "absent"
        return "active " + ", ".join(self.vips) if self.vips else "inactive"


def parse_status(out: str) -> RedirectState:
    """Parse `nft list set ip halb_redirect healthy` (or the markers STATUS_ARGV prints)."""
    text = out.strip()
    if text == "no-nft":
        return RedirectState(False, (), nft=False)
    if not text or text.endswith("absent"):
        return RedirectState(False, ())
    vips: list[str] = []
    inside = False
    for line in text.splitlines():
        if "elements = {" in line:
            inside = True
            line = line.split("elements = {", 1)[1]
        if inside:
            end = "}" in line
            line = line.split("}", 1)[0]
            vips += [v.strip() for v in line.split(",") if v.strip()]
            if end:
                inside = False
    return RedirectState(True, tuple(vips))
