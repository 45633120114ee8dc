"""VRRP timing profiles and the priorities and router ids derived from them (pure)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """VRRP and health-check timing a profile stands for (docs/profiles.md has the numbers)."""

    version: int
    advert_int: float
    top_priority: int  # the first LB host's; the skew (256 - priority) / 256 x advert
    step: int  # between neighbouring hosts: small keeps every backup's skew small
    preempt_delay: float  # a returning host waits this long before it takes a VIP back
    health: tuple[str, int, int] | None = None  # HAProxy inter/fall/rise unless given
    check_fall: int = 2  # failed HAProxy checks (the script, every check_interval) before FAULT
    check_interval: int = 1  # seconds between runs of keepalived's HAProxy check script
    check_timeout: int = 2  # seconds a run may take before keepalived counts it failed
    # a returning host (keepalived started, or back from FAULT) stays below its peers
    # until it has been healthy this long, then takes its VIPs back through the bridge
    failback_hold: float = 3.0
    # the bridge stays up this long at most once the returning host holds the VIP
    failback_grace: float = 10.0


PROFILES: Mapping[str, Profile] = {
    # conservative: no false failover on a busy, lossy segment (three 1 s adverts missed).
    # Priorities near the top keep the backup's skew small ((256 - 230) / 256 s = 0.1 s,
    # so a dead holder is replaced within 3.1 s), 20 apart so that backups never tie
    "default": Profile(2, 1.0, 250, 20, 0.0),
    # near the floor: 30 ms adverts, priorities near 255 so the skew is below a millisecond
    # the HAProxy check cannot run more often than once a second (keepalived 2.2), so the
    # fast profile acts on the first failure: it checks a pid and a socket, nothing slow
    "fast": Profile(3, 0.03, 254, 2, 3.0, ("1s", 2, 2), check_fall=1, failback_hold=2.0),
    # VMs under QEMU's TCG on busy shared cores (the VM lab). Measured there (docs/profiles.md):
    # with the default 1 s check and 2 s timeout, keepalived killed 27 and 33 runs of the
    # check scripts in 4 minutes on the two LB VMs and both VIPs went to FAULT; a guest
    # stalls for seconds, so adverts every 2 s (a silent master is dead after 6-8 s), the
    # HAProxy check every 5 s with 30 s to answer and 2 failures, backend checks every 5 s.
    # A dead HAProxy still moves the VIP at once (the exit file), as in every profile
    "emulated": Profile(
        2, 2.0, 250, 20, 0.0, ("5s", 3, 2), check_fall=2, check_interval=5, check_timeout=30
    ),
}
VRRP_PASS_MAX = 8  # keepalived truncates PASS auth to 8 characters
LOWEST_DEFAULT_PRIORITY = 50  # default priorities stop here, so the track weight can pass
TRACK_MARGIN = 10  # the check's weight exceeds the priority span by this much


def standby_weight(priorities: Mapping[str, int], host: str) -> int:
    """The returning flag's weight on HOST (failback.sh keeps it set on every backup): its
    priority falls just below the lowest peer's, the hosts in their order, so a standby
    never preempts a peer at its full priority, and its skew (the wait after a holder's
    priority-0 advert, and part of the master-down time) grows as little as it can: a
    drop to 180 would add 0.2 s to a `default` takeover. At most 8 below the lowest, so
    every standby stays above a drained holder (drain weight: span + 10), which keeps a
    VIP only while no peer is left."""
    ranked = sorted(priorities.values(), reverse=True)
    rank = min(ranked.index(priorities[host]), TRACK_MARGIN - 2)
    return -(priorities[host] - ranked[-1] + 1 + rank)


TRACK_WEIGHT_MAX = 253  # keepalived's limit for a vrrp_script weight


def master_down(advert: float) -> float:
    """How long a backup may take to declare a silent master dead: 3 adverts plus its skew,
    (256 - priority) / 256 x advert, which is below one advert. The drill, the drain and
    the deploy's VIP check all wait from this."""
    return 4 * advert


def vip_wait(advert: float) -> float:
    """How long the deploy (and the exported playbook) waits for one holder per VIP: a
    master-down time and slack for a slow host, never below 10 s."""
    return max(10.0, master_down(advert) + 5)


def derive_router_id(cluster: str, address: str) -> int:
    """Stable 1..255 from cluster name and VIP, so two clusters on one segment differ."""
    return zlib.crc32(f"{cluster}/{address}".encode()) % 255 + 1


def default_priorities(names: Sequence[str], profile: Profile | None = None) -> dict[str, int]:
    """Distinct priorities, first host highest, the profile's spacing, none below 50."""
    p = profile or PROFILES["default"]
    if len(names) <= 1:
        return {n: p.top_priority for n in names}
    # the lowest stays >= 50 so the track weight can still take any host below it
    step = max(1, min(p.step, (p.top_priority - LOWEST_DEFAULT_PRIORITY) // (len(names) - 1)))
    return {n: p.top_priority - i * step for i, n in enumerate(names)}
