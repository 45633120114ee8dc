"""Run inside a network namespace (and optionally a mount namespace) on this machine.

Host vars: `halb_netns` (a name under /run/netns or a path), `halb_mountns` (a path to a
persistent mount namespace, optional). Needs local root.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from halb.transport.base import Privilege, Transport

NETNS_DIR = Path("/run/netns")


def nsenter_argv(
    netns: str, mnt: Path | str | None = None, uts: Path | str | None = None
) -> list[str]:
    """`nsenter ... --`: the prefix that runs a command in a network namespace (a name under
    /run/netns or a path), and optionally in a mount and a UTS namespace."""
    argv = ["nsenter", f"--net={netns if '/' in netns else NETNS_DIR / netns}"]
    if mnt:
        argv.append(f"--mount={mnt}")
    if uts:
        argv.append(f"--uts={uts}")
    return [*argv, "--"]


class NetnsTransport(Transport):
    def __init__(self, name: str, netns: str, mountns: str | None = None) -> None:
        super().__init__(name, Privilege("none"))
        self.netns = netns if "/" in netns else str(NETNS_DIR / netns)
        self.mountns = mountns

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return [*nsenter_argv(self.netns, self.mountns), *argv]
