"""A handover that fails no request in flight when a VIP moves between two live hosts.

When a VIP moves, clients' ARP entries move with it, and the packets of connections the
old holder still serves reach the new holder, which has no socket for them and resets
them (1-5 per handover under load on the lab). For the few seconds of a move, the
bridge closes that gap:

- on the host that takes the VIP (the taker), a table hands every packet to the VIP
  that does not open a connection (no SYN) and belongs to no connection the taker
  answered (conntrack `new` or `invalid`) to the old holder, whose address is the next
  hop (nftables `dup` then `drop`: the packet keeps the VIP as its destination). `halb
  drain`/`undrain` put it up as table `halb_handover` (with a timer on the host that
  removes it if halb is cut off); a returning host's failback.sh as `halb_failback`;
- on the old holder, a local route for the VIP on `lo` keeps the address local after
  keepalived removes it, so its HAProxy keeps serving those connections; `arp_ignore=1`
  on the VIP's interface keeps it from answering ARP for a VIP it no longer holds there,
  and `arp_announce=2` from naming the VIP in its own ARP requests. The holder keeps
  both for as long as it is MASTER (failback.sh, called by keepalived's notify script),
  so any move finds them in place, and lets go once its VIP frontends are idle (the
  grace at most) after it stops being MASTER, at once on FAULT.

IPv6 VIPs get the taker's table in a table of their own (`ip6 halb_handover6`), and on
the old holder the local route on `lo` from halb (failback.sh keeps IPv4 VIPs only); that
route is all it needs, as it does not answer neighbour solicitations for it.

halb undoes the taker's side (and an IPv6 old holder's) as soon as the old holder's VIP
frontends are idle (or the grace runs out). The module is pure: plans and scripts. `run`
executes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from halb import kinds
from halb.paths import FAILBACK_SCRIPT, RETURNING_FLAG, VRRP_STATE_DIR
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


def raised(
    action: Literal["drain", "undrain"],
    host: str,
    holders: Mapping[str, Sequence[str]],
    priorities: Mapping[str, Mapping[str, int]],
    healthy_peers: Sequence[str],
) -> dict[str, str]:
    """VIP address -> the one host whose returning flag halb clears so that it takes the VIP.

    Every backup keeps failback.sh's returning flag set (it stays low, so it never
    preempts a live holder unbridged); a drain or undrain raises exactly one taker per VIP
    that moves, after its side of the bridge is up: for a drain the healthy peer with the
    highest priority for each VIP HOST holds, for an undrain HOST for the VIPs it leads.
    """
    out: dict[str, str] = {}
    for address, now in holders.items():
        prios = priorities.get(address, {})
        if action == "drain":
            peers = sorted((prios.get(p, 0), p) for p in healthy_peers if p != host)
            if host in now and peers:
                out[address] = peers[-1][1]
            continue
        able = [*healthy_peers, host]
        top = max(able, key=lambda n: prios.get(n, 0))
        if top == host and host not in now:
            out[address] = host
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


# One VIP's rule on a taker; failback.sh fills in {to} when it has found the holder.
FORWARD_RULE = (
    "ip daddr {vip} tcp flags & syn != syn ct state new,invalid "
    'counter dup to {to} device "{dev}" drop'
)
# The chain the rules go in: after conntrack (-200), before the usual filter and nat hooks
FORWARD_CHAIN = "type filter hook prerouting priority -150; policy accept;"


def forward_rule(address: str, to: str, interface: str) -> str:
    return FORWARD_RULE.format(vip=address, to=to, dev=kinds.interface(interface))


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
    lines.append(f"    {FORWARD_CHAIN}")
    for m in moves:
        if host not in m.takers:
            continue
        rule = forward_rule(check(m.address), check(m.old_ip), m.interface)
        lines.append(f"    {rule.replace('ip daddr', family + ' daddr', 1)}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def _ipv6(value: str) -> str:
    """An IPv6 address checked by halb.kinds (no zone, brackets or link-local)."""
    s = kinds.host_ip(value)
    if ":" not in s:
        raise ValueError(f"{kinds.shown(value)} is not an IPv6 address")
    return s


def accept6_args(moves: Sequence[Move], host: str) -> list[str]:
    """The IPv6 VIPs HOST, the old holder, keeps local on lo for the handover."""
    return [_ipv6(m.address) for m in moves if m.old == host and ":" in m.address]


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

# The old holder's side, as shell functions for failback.sh (run by keepalived's notify
# script while the host is MASTER, and after it for the grace): `keep_local VIP DEV`
# keeps VIP local on lo and quiet in ARP on DEV, saving DEV's sysctls once (in $RUN);
# `let_go VIP DEV` drops the route and restores the sysctls once no held-* file in $RUN
# names DEV with an IPv4 VIP any more. An IPv6 VIP needs the route alone (a local route
# on lo answers no neighbour solicitation). The saved values stay: a host that is MASTER
# again before a release ends would otherwise save the value halb set as the one to
# restore.
KEEP_LOCAL = r"""# the sysctls are saved and restored under a lock: two instances going MASTER at
# once would otherwise save the value the other had just set, and restore that
sysctl_lock() { ! command -v flock >/dev/null 2>&1 || flock 9; }
keep_local() {
  case $1 in *:*) ip -6 route replace local "$1" dev lo table local metric 1; return ;; esac
  mkdir -p "$RUN/sysctl"
  {
    sysctl_lock
    for kv in arp_ignore=1 arp_announce=2; do
      k=${kv%=*} v=${kv#*=} knob=/proc/sys/net/ipv4/conf/$2/${kv%=*}
      [ -e "$RUN/sysctl/$2.$k" ] || cat "$knob" > "$RUN/sysctl/$2.$k"
      [ "$(cat "$knob")" -ge "$v" ] || echo "$v" > "$knob"
    done
  } 9> "$RUN/sysctl/lock"
  ip route replace local "$1" dev lo table local metric 1
}
let_go() {
  case $1 in
  *:*) ip -6 route del local "$1" dev lo table local metric 1 2>/dev/null; return 0 ;;
  esac
  ip route del local "$1" dev lo table local metric 1 2>/dev/null
  mkdir -p "$RUN/sysctl"
  {
    sysctl_lock
    if ! grep -qs "^[0-9.]* $2\$" "$RUN"/held-*; then
      for k in arp_ignore arp_announce; do
        f=$RUN/sysctl/$2.$k
        [ -f "$f" ] || continue
        cat "$f" > "/proc/sys/net/ipv4/conf/$2/$k" 2>/dev/null
      done
    fi
  } 9> "$RUN/sysctl/lock"
}
"""

HOLD = f'exec "{FAILBACK_SCRIPT}" sync'

# An IPv6 old holder: $1, $2 as for FORWARD, then the VIPs it keeps local on lo (UNDO
# removes the routes listed in {STATE}/routes).
ACCEPT6 = f"""set -e
umask 077; mkdir -p {STATE}
TIMER='{TIMER}'
setsid sh -c "$TIMER" timer "$1" "$2" {STATE}/accept.timer </dev/null >/dev/null 2>&1 &
echo $! > {STATE}/accept.timer
shift 2
for vip in "$@"; do
  ip route replace local "$vip" dev lo table local metric 1
  echo "$vip" >> {STATE}/routes
done
"""

# Undo the taker's side (and an old holder's from halb before failback.sh), whatever
# exists; prints the packets handed to the old holder.
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


def accept6_argv(moves: Sequence[Move], host: str, limit: float) -> list[str] | None:
    """The old holder's side for IPv6 VIPs, or None when HOST gives up none."""
    vips = accept6_args(moves, host)
    return sh(ACCEPT6, str(int(limit) + 1), UNDO, *vips) if vips else None


# Clear the returning flags named ($@) that exist: keepalived raises the priority at once
RAISE = 'for f in "$@"; do [ ! -e "$f" ] || echo 0 > "$f"; done'


def raise_argv(instances: Sequence[str]) -> list[str]:
    """Clear failback.sh's returning flag of each instance on a taker."""
    return sh(RAISE, *(f"{RETURNING_FLAG}{i}" for i in instances))


def hold_argv() -> list[str]:
    """The old holder's side where it is missing (failback.sh keeps it while MASTER; a
    deploy that only reloaded keepalived saw no state change)."""
    return sh(HOLD)


def failback_undo_argv() -> list[str]:
    """Everything failback.sh set up on a host (a rollback that removes the script)."""
    return sh(f'[ ! -x "{FAILBACK_SCRIPT}" ] || exec "{FAILBACK_SCRIPT}" undo')


def undo_argv() -> list[str]:
    return sh(UNDO)


def forwarded(undo_output: str) -> int:
    """Packets a taker handed to the old holder, from the undo script's output."""
    return sum(
        int(w[1])
        for w in (ln.split() for ln in undo_output.splitlines())
        if len(w) == 2 and w[0] == "forwarded" and w[1].isdigit()
    )
