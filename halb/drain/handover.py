"""A handover that fails no request in flight when a VIP moves between two live hosts.

When a VIP moves, clients' ARP entries move with it, and the packets of connections the
old holder still serves reach the new holder, which has no socket for them and resets
them (1-5 per handover under load on the lab). For the few seconds of a drain or an
undrain, halb bridges that gap:

- on each host that may take a VIP (the taker), a table `halb_handover` hands every
  packet to the VIP that does not open a connection (no SYN) and belongs to no
  connection the taker answered (conntrack `new` or `invalid`) to the old holder, whose
  address is the next hop (nftables `dup` then `drop`: the packet keeps the VIP as its
  destination);
- on the old holder, a local route for the VIP on `lo` keeps the address local after
  keepalived removes it, so its HAProxy keeps serving those connections, and
  `arp_ignore=1` on the VIP's interface keeps it from answering ARP for the VIP that it no
  longer holds on that interface.

IPv6 VIPs get the same in a table of their own (`ip6 halb_handover6`); the local route on
`lo` is all the old holder needs, as it does not answer neighbour solicitations for it.

Both sides arm a timer on the host that undoes everything even if halb is cut off; halb
undoes it as soon as the old holder's VIP frontends are idle (or the grace runs out).
The module is pure: plans and scripts. `run` executes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from halb import kinds
from halb.paths import VRRP_STATE_DIR
from halb.shell import sh

TABLE = "halb_handover"
TABLE6 = "halb_handover6"  # the same for IPv6 VIPs (nftables ip6); no NDP knob is needed:
# a local route on lo does not make the old holder answer neighbour solicitations
STATE = f"{VRRP_STATE_DIR}/handover"  # timer pid and saved sysctls, root-only /run


@dataclass(frozen=True)
class Move:
    """VIP ADDRESS on INTERFACE leaves OLD (at OLD_IP); any of TAKERS may take it."""

    address: str
    interface: str
    old: str
    old_ip: str
    takers: tuple[str, ...]


def will_hold(
    action: Literal["drain", "undrain"],
    host: str,
    holders: Mapping[str, Sequence[str]],
    priorities: Mapping[str, Mapping[str, int]],
    healthy_peers: Sequence[str],
    *,
    preempt: bool,
) -> dict[str, list[str]]:
    """VIP address -> the hosts that may hold it once the drain or undrain is done.

    A drain moves the VIPs HOST holds to any healthy peer; an undrain (with preemption)
    brings back the VIPs HOST has the highest priority for among the healthy hosts.
    """
    out: dict[str, list[str]] = {}
    for address, now in holders.items():
        if action == "drain":
            out[address] = list(healthy_peers) if host in now else []
            continue
        able = {*healthy_peers, host}
        ranked = sorted((p, n) for n, p in priorities.get(address, {}).items() if n in able)
        leads = preempt and bool(ranked) and ranked[-1][1] == host
        out[address] = [host] if leads and host not in now else []
    return out


def plan(
    holders: Mapping[str, Sequence[str]],
    will_hold: Mapping[str, Sequence[str]],
    interfaces: Mapping[str, str],
    host_ips: Mapping[str, str],
) -> list[Move]:
    """Moves for VIPs (by address) held by exactly one host that another host may take.

    holders: VIP address -> hosts holding it now; will_hold: VIP address -> the hosts that
    may hold it when the change is done (they get the forwarding table).
    """
    moves: list[Move] = []
    for address, now in holders.items():
        if len(now) != 1:
            continue  # nobody or split brain: no connection state worth bridging
        old = now[0]
        takers = tuple(h for h in will_hold.get(address, ()) if h != old)
        if takers:
            moves.append(Move(address, interfaces[address], old, host_ips[old], takers))
    return moves


def forward_rules(moves: Sequence[Move], host: str) -> str:
    """The nftables ruleset for a taker: replaces any earlier one in one transaction. IPv6
    VIPs get a table of their own (ip6), only when there are some."""
    four = [m for m in moves if ":" not in m.address]
    six = [m for m in moves if ":" in m.address]
    text = _forward_table("ip", TABLE, four, host)
    return text + _forward_table("ip6", TABLE6, six, host) if six else text


def _forward_table(family: str, table: str, moves: Sequence[Move], host: str) -> str:
    check = kinds.ipv4 if family == "ip" else _ipv6
    lines = [
        f"table {family} {table}",
        f"delete table {family} {table}",
        f"table {family} {table} {{",
    ]
    lines.append("  chain pre {")
    # after conntrack (-200), before the usual filter and nat hooks
    lines.append("    type filter hook prerouting priority -150; policy accept;")
    for m in moves:
        if host not in m.takers:
            continue
        vip, to = check(m.address), check(m.old_ip)
        lines.append(
            f"    {family} daddr {vip} tcp flags & syn != syn ct state new,invalid "
            f'counter dup to {to} device "{kinds.interface(m.interface)}" drop'
        )
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def _ipv6(value: str) -> str:
    """An IPv6 address checked by halb.kinds (no zone, brackets or link-local)."""
    s = kinds.host_ip(value)
    if ":" not in s:
        raise ValueError(f"{kinds.shown(value)} is not an IPv6 address")
    return s


def accept_args(moves: Sequence[Move], host: str) -> list[str]:
    """VIP address and interface pairs the old holder keeps local for the handover."""
    out: list[str] = []
    for m in moves:
        if m.old == host:
            vip = _ipv6(m.address) if ":" in m.address else kinds.ipv4(m.address)
            out += [vip, kinds.interface(m.interface)]
    return out


# A timer on the host: $1 seconds, then the undo script $2; it drops its pid file $3
# first, so the undo it runs does not stop the timer running it.
TIMER = 'sleep "$1"; rm -f "$3"; sh -c "$2"'

# Taker: $1 = seconds until the timer undoes it, $2 = the undo script, $3 = the ruleset.
FORWARD = f"""set -e
umask 077; mkdir -p {STATE}
TIMER='{TIMER}'
printf '%s' "$3" | nft -f -
setsid sh -c "$TIMER" timer "$1" "$2" {STATE}/forward.timer </dev/null >/dev/null 2>&1 &
echo $! > {STATE}/forward.timer
"""

# Old holder: $1, $2 as above, then pairs of VIP and interface. An interface's arp_ignore
# is saved once (a second run keeps the value from before the first).
ACCEPT = f"""set -e
umask 077; mkdir -p {STATE}/arp_ignore
TIMER='{TIMER}'
setsid sh -c "$TIMER" timer "$1" "$2" {STATE}/accept.timer </dev/null >/dev/null 2>&1 &
echo $! > {STATE}/accept.timer
shift 2
while [ $# -ge 2 ]; do
  vip=$1 dev=$2; shift 2
  knob=/proc/sys/net/ipv4/conf/$dev/arp_ignore
  [ -e "{STATE}/arp_ignore/$dev" ] || cat "$knob" > "{STATE}/arp_ignore/$dev"
  [ "$(cat "$knob")" -ge 1 ] || echo 1 > "$knob"
  ip route replace local "$vip" dev lo table local metric 1
  echo "$vip" >> {STATE}/routes
done
"""

# Undo both sides, whatever exists; prints the packets handed to the old holder.
UNDO = f"""for t in forward accept; do
  # a timer is its own process group (setsid): its sleep goes with it
  p=$(cat {STATE}/$t.timer 2>/dev/null) && [ -n "$p" ] && kill -- "-$p" 2>/dev/null
  rm -f {STATE}/$t.timer
done
for t in "ip {TABLE}" "ip6 {TABLE6}"; do
  nft list table $t >/dev/null 2>&1 || continue
  nft list table $t | sed -n 's/.*counter packets \\([0-9]*\\).*/forwarded \\1/p'
  nft delete table $t
done
if [ -f {STATE}/routes ]; then
  sort -u {STATE}/routes | while read -r vip; do
    ip route del local "$vip" dev lo table local metric 1 2>/dev/null
  done
  rm -f {STATE}/routes
fi
for f in {STATE}/arp_ignore/*; do
  [ -f "$f" ] || continue
  cat "$f" > "/proc/sys/net/ipv4/conf/${{f##*/}}/arp_ignore" 2>/dev/null
  rm -f "$f"
done
true
"""


def forward_argv(moves: Sequence[Move], host: str, limit: float) -> list[str]:
    return sh(FORWARD, str(int(limit) + 1), UNDO, forward_rules(moves, host))


def accept_argv(moves: Sequence[Move], host: str, limit: float) -> list[str]:
    return sh(ACCEPT, str(int(limit) + 1), UNDO, *accept_args(moves, host))


def undo_argv() -> list[str]:
    return sh(UNDO)


def forwarded(undo_output: str) -> int:
    """Packets a taker handed to the old holder, from the undo script's output."""
    return sum(
        int(w[1])
        for w in (ln.split() for ln in undo_output.splitlines())
        if len(w) == 2 and w[0] == "forwarded" and w[1].isdigit()
    )
