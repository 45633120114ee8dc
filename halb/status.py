"""What the LB hosts are doing: `status` gathers every LB host's facts in parallel and
assesses them (`halb.status_report`, pure). The records, the assessment and the parsers
stay importable from here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# `X as X`: the parsers moved to halb.facts, and stay importable from here for a release
from halb.facts.haproxy import StatRow as StatRow
from halb.facts.haproxy import parse_show_stat as parse_show_stat
from halb.facts.ipaddr import IfAddr as IfAddr
from halb.facts.ipaddr import parse_ip_addr as parse_ip_addr
from halb.facts.lbstate import LbFacts
from halb.facts.lbstate import facts_from_output as facts_from_output
from halb.facts.lbstate import parse_vrrp_state as parse_vrrp_state
from halb.facts.lbstate import split_sections as split_sections
from halb.facts.neigh import NEIGH_ARGV, parse_neigh
from halb.gather import gather_host
from halb.services import manager
from halb.spec import Cluster
from halb.status_report import BackendStatus as BackendStatus
from halb.status_report import FrontendRef as FrontendRef
from halb.status_report import FrontendStatus as FrontendStatus
from halb.status_report import HostStatus as HostStatus
from halb.status_report import StatusReport as StatusReport
from halb.status_report import VipRef as VipRef
from halb.status_report import VipStatus as VipStatus
from halb.status_report import assess as assess
from halb.status_report import known_secrets as known_secrets
from halb.status_report import refs as refs
from halb.status_report import render_text as render_text
from halb.status_report import vip_holders as vip_holders
from halb.transport import TransportFactory, for_host


def local_neighbours() -> dict[str, str] | None:
    """This host's neighbour table (address -> MAC); None when `ip` cannot tell."""
    try:
        cp = subprocess.run(NEIGH_ARGV, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_neigh(cp.stdout) if cp.returncode == 0 else None


def status(
    cluster: Cluster,
    *,
    transport_for: TransportFactory = for_host,
    neighbours: Callable[[], dict[str, str] | None] = local_neighbours,
) -> StatusReport:
    """Gather every LB host in parallel and assess; with this host's neighbour table, to
    see a VIP that someone other than its holder answers for."""
    hosts = list(cluster.lb_hosts)
    secrets = known_secrets(cluster)
    transports = [transport_for(h) for h in hosts]
    try:

        def one(i: int) -> LbFacts:
            svc = manager(cluster.service_manager(hosts[i]), transports[i])
            return gather_host(transports[i], svc, journal=True, secrets=secrets)

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            facts = list(pool.map(one, range(len(hosts))))
    finally:
        for t in transports:
            t.close()
    vips, fes = refs(cluster)
    names = {h.ip: h.name for h in cluster.inventory.hosts.values() if h.ip}
    return assess(facts, vips, fes, local_neigh=neighbours(), names=names)
