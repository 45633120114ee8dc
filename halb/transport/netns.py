"""Run inside a network namespace (and optionally a mount namespace) on this machine.

Host vars: `halb_netns` (a name under /run/netns or a path), `halb_mountns` (a path to a
persistent mount namespace, optional). Needs local root.
"""

from __future__ import annotations

from collections.abc import Sequence

from halb.transport.base import Privilege, Transport


class NetnsTransport(Transport):
    def __init__(self, name: str, netns: str, mountns: str | None = None) -> None:
        super().__init__(name, Privilege("none"))
        self.netns = netns if "/" in netns else f"/run/netns/{netns}"
        self.mountns = mountns

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        prefix = ["nsenter", f"--net={self.netns}"]
        if self.mountns:
            prefix.append(f"--mount={self.mountns}")
        return [*prefix, "--", *argv]
