"""Run on this machine (ansible_connection=local)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from halb.transport.base import Privilege, Transport, privilege_for


class LocalTransport(Transport):
    def __init__(self, name: str, privilege: Privilege | None = None) -> None:
        super().__init__(name, privilege or privilege_for(None, None, is_root=os.geteuid() == 0))

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)
