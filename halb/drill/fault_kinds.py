"""The faults the drill injects: one record each, with everything the drill needs to
inject it, watch for its effect, restore it and judge the round (pure).

A new fault is one record here and, if it acts outside the services, its script: a fixed
shell text run as `sh -c SCRIPT fault inject|restore ARGS...` (values only as arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from halb.daemons import ServiceName
from halb.drill import rogue_kinds as rogue
from halb.paths import LAB_CONTROL_DIR

NFT_TABLE = "halb_drill"


class Fault(StrEnum):
    # `all` runs them in this order; partition last, since a heal without fresh gratuitous
    # ARPs can leave a client's ARP entry on the wrong host for a while (see docs/drill.md)
    GRACEFUL = "graceful"
    KILL = "kill"
    HAPROXY = "haproxy"
    LINK = "link"
    APISERVER = "apiserver"
    PARTITION = "partition"
    # a hostile host on the segment (halb/drill/rogue.py); not part of `all`
    ROGUE_MCAST = "rogue-vrrp-mcast"
    ROGUE_FORGED = "rogue-vrrp-forged"
    ROGUE_V2 = "rogue-vrrp-v2"
    ROGUE_V2_BADPASS = "rogue-vrrp-v2-badpass"
    ROGUE_V3 = "rogue-vrrp-v3"
    ARP_SPOOF = "arp-spoof"


class Hits(StrEnum):
    """Where a fault acts."""

    HOLDER = "holder"  # the LB host holding the first VIP
    LB_HOSTS = "lb hosts"  # every LB host at once
    MASTERS = "masters"  # every apiserver backend
    ROGUE = "rogue"  # a host of the inventory that is not an LB host, sending forged frames


class Effect(StrEnum):
    """What the drill watches for once the fault is in."""

    VIP_MOVES = "vip moves"  # the first VIP leaves the holder
    SPLIT = "split"  # every VIP has two holders or more
    VIP_STAYS = "vip stays"  # nothing moves: the fault is behind HAProxy


@dataclass(frozen=True)
class ServiceFault:
    """A fault on the holder's keepalived or HAProxy, restored by starting it again."""

    service: ServiceName
    signal: str  # sent to the main process
    all_procs: bool  # SIGKILL its children too
    # stop through the service manager (systemd: `systemctl stop --no-block`), so it
    # knows the service was stopped; a plain supervisor gets the signal
    graceful: bool = False


@dataclass(frozen=True)
class FaultKind:
    fault: Fault
    what: str
    hits: Hits
    effect: Effect
    # seconds the fault stays in after a backup could have taken over (a master-down
    # time), or in all when the VIP stays
    hold_margin: float
    service: ServiceFault | None = None  # else run on the host by `script`
    script: str = ""
    takes_interface: bool = False  # the script's argument: the VIP's interface
    # the host's own timer restores it (it may cut the drill off from the host until then)
    restores_itself: bool = False
    # heal the old holder first: both sides then hear each other at once, and the old
    # holder hearing the new one's adverts is what makes it send fresh gratuitous ARPs
    heal_holder_first: bool = False
    lab_only: bool = False  # drives a lab stand-in; a real host has nothing to break
    rogue: rogue.Variant | None = None  # the frames a rogue host sends (Hits.ROGUE)

    def hold(self, master_down: float) -> float:
        """How long the fault may take to show its effect before it is restored."""
        if self.effect is Effect.VIP_STAYS:
            return self.hold_margin
        return master_down + self.hold_margin

    def backstop(self, hold: float) -> float:
        """When the host-side timer restores the fault if the drill cannot."""
        return hold if self.restores_itself else hold + 30

    @property
    def stops_early(self) -> bool:
        """The watch ends a second after the effect is seen, not at the end of the hold."""
        return self.effect is not Effect.VIP_STAYS and not self.restores_itself

    def effect_seen(self, target: str, holders: dict[str, list[str]], first: str) -> bool:
        if self.effect is Effect.SPLIT:
            return all(len(x) >= 2 for x in holders.values())
        return any(x != target for x in holders[first])


STATE_DIR = "/run/halb-drill"  # the drill's files on a host

# An interface set down loses its IPv6 addresses (unless keep_addr_on_down), and nobody
# adds them back when it comes up: the host would be left without its own IPv6 address
# (its SSH, its VRRPv3 unicast source). A failed link keeps them, as IPv4 addresses are
# kept: keep_addr_on_down is 1 while the link is down, its old value back afterwards.
LINK = f"""
k=/proc/sys/net/ipv6/conf/$2/keep_addr_on_down s={STATE_DIR}/link-$2.keep_addr_on_down
case "$1" in
inject)
  if [ -w "$k" ] && [ ! -e "$s" ]; then
    mkdir -p {STATE_DIR} && cat "$k" > "$s" && echo 1 > "$k"
  fi
  ip link set dev "$2" down ;;
restore)
  ip link set dev "$2" up; rc=$?
  if [ -e "$s" ]; then cat "$s" > "$k" && rm -f "$s"; fi
  exit $rc ;;
esac
"""
# VRRP over IPv4 (protocol 112) and over IPv6 (next header 112, past any extension
# headers: nft's l4proto and ip6tables' -p both look past them)
PARTITION = f"""
case "$1" in
inject)
  if command -v nft >/dev/null 2>&1; then
    printf '%s\\n' 'add table inet {NFT_TABLE}' \\
      'add chain inet {NFT_TABLE} input {{ type filter hook input priority -300; }}' \\
      'add rule inet {NFT_TABLE} input ip protocol vrrp drop' \\
      'add rule inet {NFT_TABLE} input meta nfproto ipv6 meta l4proto vrrp drop' | nft -f -
  else
    iptables -I INPUT -p 112 -m comment --comment {NFT_TABLE} -j DROP
    if command -v ip6tables >/dev/null 2>&1; then
      ip6tables -I INPUT -p 112 -m comment --comment {NFT_TABLE} -j DROP
    fi
  fi ;;
restore)
  if command -v nft >/dev/null 2>&1; then nft delete table inet {NFT_TABLE} 2>/dev/null; fi
  while iptables -D INPUT -p 112 -m comment --comment {NFT_TABLE} -j DROP 2>/dev/null; do :; done
  while ip6tables -D INPUT -p 112 -m comment --comment {NFT_TABLE} -j DROP 2>/dev/null; do :; done
  true ;;
esac
"""
APISERVER = f"""
d={LAB_CONTROL_DIR}
case "$1" in
inject) printf '500\\n' > "$d/.readyz.drill" && mv -f "$d/.readyz.drill" "$d/readyz" ;;
restore) rm -f "$d/readyz" "$d/.readyz.drill" ;;
esac
"""

V = rogue.Variant

KINDS: dict[Fault, FaultKind] = {
    k.fault: k
    for k in (
        FaultKind(
            Fault.GRACEFUL,
            "keepalived stopped (SIGTERM)",
            Hits.HOLDER,
            Effect.VIP_MOVES,
            2.0,
            service=ServiceFault("keepalived", "TERM", all_procs=False, graceful=True),
        ),
        FaultKind(
            Fault.KILL,
            "keepalived SIGKILLed (main and children)",
            Hits.HOLDER,
            Effect.VIP_MOVES,
            2.0,
            service=ServiceFault("keepalived", "KILL", all_procs=True),
        ),
        FaultKind(
            Fault.HAPROXY,
            "HAProxy SIGKILLed, keepalived alive",
            Hits.HOLDER,
            Effect.VIP_MOVES,
            5.0,  # the check script's interval x fall comes first
            service=ServiceFault("haproxy", "KILL", all_procs=True),
        ),
        FaultKind(
            Fault.LINK,
            "VIP interface down on the holder",
            Hits.HOLDER,
            Effect.VIP_MOVES,
            1.0,
            script=LINK,
            takes_interface=True,
            restores_itself=True,
        ),
        FaultKind(
            Fault.APISERVER,
            "every master's /readyz answers 500",
            Hits.MASTERS,
            Effect.VIP_STAYS,
            2.0,
            script=APISERVER,
            lab_only=True,
        ),
        FaultKind(
            Fault.PARTITION,
            "VRRP (IPv4 protocol, IPv6 next header 112) dropped on LB hosts",
            Hits.LB_HOSTS,
            Effect.SPLIT,
            3.0,
            script=PARTITION,
            heal_holder_first=True,
        ),
        *(
            FaultKind(
                f,
                what,
                Hits.ROGUE,
                Effect.VIP_STAYS,
                10.0,
                script=rogue.SCRIPT,
                rogue=variant,
            )
            for f, variant, what in (
                (Fault.ROGUE_MCAST, V.MCAST, "multicast adverts at priority 255"),
                (Fault.ROGUE_FORGED, V.FORGED, "adverts at 255, a peer's address forged"),
                (Fault.ROGUE_V2, V.V2, "VRRPv2 at 255, forged, the right password"),
                (Fault.ROGUE_V2_BADPASS, V.V2_BADPASS, "VRRPv2 at 255, forged, a wrong password"),
                (Fault.ROGUE_V3, V.V3, "VRRPv3 at 255, a peer's address forged"),
                (Fault.ARP_SPOOF, V.ARP, "gratuitous ARP for the VIPs from a rogue MAC"),
            )
        ),
    )
}
FAULTS: tuple[str, ...] = tuple(f.value for f in Fault)
# `--fault all`: the faults of the LB hosts and their backends; the rogue's are asked by name
ALL_FAULTS: tuple[str, ...] = tuple(f for f in FAULTS if KINDS[Fault(f)].rogue is None)
# `--fault rogue-vrrp`: every forged-advert variant
GROUPS: dict[str, tuple[str, ...]] = {
    "rogue-vrrp": tuple(f for f in FAULTS if f.startswith("rogue-vrrp-")),
}
