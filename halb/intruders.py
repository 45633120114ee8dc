"""Who else speaks for the VIPs (pure): senders whose VRRP halb's filter dropped, and a
VIP that a host's neighbour table sends to a MAC that is not its holder's. `halb status`
reports both as problems (exit 1); `textfile` gives the same counts to Prometheus'
node_exporter (its textfile collector).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from halb.facts.lbstate import LbFacts

HERE = "this host"  # where `halb status` runs (the taskbox): its own neighbour table


class Kind(StrEnum):
    VRRP = "vrrp"  # adverts dropped by halb's VRRP filter
    ARP = "arp"  # a VIP sent to a MAC that is not its holder's


@dataclass(frozen=True)
class Intruder:
    kind: Kind
    seen_by: str  # the LB host whose filter dropped it / whose neighbour table says so
    address: str  # the sender's address (vrrp) or the VIP (arp)
    mac: str
    text: str
    packets: int = 0  # vrrp: dropped so far
    interface: str = ""
    vip: str = ""  # arp: the VIP's name


@dataclass(frozen=True)
class VipSeen:
    """A VIP as the check needs it: its name, address, interface and single holder."""

    name: str
    address: str
    interface: str
    holder: str


def find(
    facts: Sequence[LbFacts],
    vips: Sequence[VipSeen],
    *,
    local_neigh: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> tuple[list[Intruder], list[str]]:
    """(intruders, notes). `names`: address -> inventory host, to name a sender;
    `local_neigh`: the neighbour table where status runs (address -> MAC)."""
    names = names or {}
    lb_macs = {mac: f.host for f in facts for mac in f.macs.values()}
    by_host = {f.host: f for f in facts}
    # a foreign MAC named by the address some neighbour table has for it (not a VIP)
    vip_addrs = {v.address for v in vips}
    owners: dict[str, str] = {}
    for table in [*(f.neigh for f in facts), local_neigh or {}]:
        for addr, mac in table.items():
            if addr not in vip_addrs and mac not in lb_macs:
                owners.setdefault(mac, f"{names[addr]}, {addr}" if addr in names else addr)
    out: list[Intruder] = []
    notes: list[str] = []
    for f in facts:
        for fo in f.vrrp_filter.foreign if f.vrrp_filter else ():
            who = _sender(fo.address, fo.mac, names, by_host)
            out.append(
                Intruder(
                    Kind.VRRP,
                    f.host,
                    fo.address,
                    fo.mac,
                    f"{f.host}: foreign VRRP on {fo.interface} dropped by halb's VRRP filter: "
                    f"{who}, {fo.packets} packet(s)",
                    fo.packets,
                    fo.interface,
                )
            )
    for v in vips:
        holder = by_host.get(v.holder)
        want = holder.macs.get(v.interface) if holder else None
        if not want:
            continue
        tables = [(f.host, f.neigh) for f in facts if f.host != v.holder]
        if local_neigh is not None:
            tables.append((HERE, local_neigh))
        for seen_by, neigh in tables:
            got = neigh.get(v.address)
            if got is None or got == want:
                continue
            mac = got
            if mac in lb_macs:
                notes.append(
                    f"{seen_by}: sends VIP {v.name} ({v.address}) to {lb_macs[mac]} ({mac}), "
                    f"which does not hold it (a stale ARP entry after a move)"
                )
                continue
            out.append(
                Intruder(
                    Kind.ARP,
                    seen_by,
                    v.address,
                    mac,
                    f"{seen_by}: VIP {v.name} ({v.address}) is answered for by MAC {mac}"
                    + (f" ({owners[mac]})" if mac in owners else "")
                    + f", not by its holder {v.holder} ({want}): ARP spoofing?",
                    interface=v.interface,
                    vip=v.name,
                )
            )
    return out, notes


def _sender(
    address: str, mac: str, names: Mapping[str, str], by_host: Mapping[str, LbFacts]
) -> str:
    name = names.get(address)
    lb = by_host.get(name or "")
    if lb is not None:
        if mac in lb.macs.values():
            return (
                f"{address} ({name}) from its own MAC {mac}: the filter has an old MAC "
                "for it, `halb deploy` learns the new one"
            )
        return f"{address} ({name}'s address, forged) from MAC {mac}, not {name}'s"
    return f"{address} ({name}) from MAC {mac}" if name else f"{address} from MAC {mac}"


def _metric(name: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]


def textfile(intruders: Sequence[Intruder]) -> str:
    """Prometheus text exposition (node_exporter's textfile collector)."""
    vrrp = [i for i in intruders if i.kind is Kind.VRRP]
    arp = [i for i in intruders if i.kind is Kind.ARP]
    lines = _metric(
        "halb_vrrp_foreign_dropped",
        "VRRP packets halb's filter dropped, per sender.",
        [
            f'halb_vrrp_foreign_dropped{{host="{i.seen_by}",interface="{i.interface}",'
            f'address="{i.address}",mac="{i.mac}"}} {i.packets}'
            for i in vrrp
        ],
    )
    lines += _metric(
        "halb_vip_foreign_mac",
        "1: a neighbour table sends the VIP to a foreign MAC.",
        [
            f'halb_vip_foreign_mac{{seen_by="{i.seen_by}",vip="{i.vip}",'
            f'address="{i.address}",mac="{i.mac}"}} 1'
            for i in arp
        ],
    )
    lines += _metric(
        "halb_intruders",
        "Foreign VRRP senders and foreign VIP answers seen by halb status.",
        [f'halb_intruders{{kind="vrrp"}} {len(vrrp)}', f'halb_intruders{{kind="arp"}} {len(arp)}'],
    )
    return "\n".join(lines) + "\n"
