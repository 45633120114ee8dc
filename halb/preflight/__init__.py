"""Preflight: network and host checks on every LB host before anything is deployed.

collect.py runs the commands (through a transport; each answer parsed by `halb.facts`),
judge.py turns what the hosts told into findings (pure), report.py adds them up to an
exit status and a JSON document. Nothing changes on any host, except with
`--open-firewall` (open_firewall.py).
"""

from __future__ import annotations

from halb.level import Level
from halb.preflight.collect import run_preflight
from halb.preflight.judge import (
    arp_results,
    firewall_results,
    interface_results,
    port_results,
    vrrp_results,
)
from halb.preflight.report import Finding, document, exit_status

__all__ = [
    "Finding",
    "Level",
    "arp_results",
    "document",
    "exit_status",
    "firewall_results",
    "interface_results",
    "port_results",
    "run_preflight",
    "vrrp_results",
]
