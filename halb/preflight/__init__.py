"""Preflight: network and host checks on every LB host before anything is deployed.

collect.py runs the commands (through a transport; each answer parsed by `halb.facts`),
judge.py turns what the hosts told into findings (pure), report.py adds them up to an
exit status and a JSON document. Nothing changes on any host, except with
`--open-firewall` (open_firewall.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from halb.level import Level

if TYPE_CHECKING:
    from halb.preflight.collect import run_preflight
    from halb.preflight.judge import (
        arp_results,
        firewall_results,
        interface_results,
        port_results,
        vrrp_results,
    )
    from halb.preflight.report import PreflightResult, document, exit_status

__all__ = [
    "Level",
    "PreflightResult",
    "arp_results",
    "document",
    "exit_status",
    "firewall_results",
    "interface_results",
    "port_results",
    "run_preflight",
    "vrrp_results",
]

# Each name above, imported from its module on first use: importing one pure part of
# this package (halb.preflight.judge) must not run the imports of its effects.
_WHERE = {
    "run_preflight": "collect",
    "arp_results": "judge",
    "firewall_results": "judge",
    "interface_results": "judge",
    "port_results": "judge",
    "vrrp_results": "judge",
    "PreflightResult": "report",
    "document": "report",
    "exit_status": "report",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
