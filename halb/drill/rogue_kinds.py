"""The hostile host's faults, the pure part: which frames (`Variant`), how often, and the
small sender that puts them on the wire from a host that is not an LB host (plain python3
with an AF_PACKET socket, so the rogue host needs no scapy). halb/drill/rogue.py builds
the frames with scapy.
"""

from __future__ import annotations

from enum import StrEnum

MAX_SENDS = 100_000  # a bound on the sender's loop whatever its time says


class Variant(StrEnum):
    MCAST = "mcast"  # multicast to 224.0.0.18 from the rogue's own address
    FORGED = "forged"  # unicast to each LB host, a peer's address forged as the source
    V2 = "v2"  # forged unicast, VRRPv2 with the cluster's password (if it has one)
    V2_BADPASS = "v2-badpass"  # forged unicast, VRRPv2 with a wrong PASS password
    V3 = "v3"  # forged unicast, VRRPv3 (no authentication exists)
    ARP = "arp"  # gratuitous ARP requests and replies for each VIP from the rogue's MAC


def interval(variant: Variant, advert_int: float) -> float:
    """How often the sender repeats its frames: at least once an advert interval (a backup's
    master-down timer restarts on each), ARP every 0.2 s (Linux ignores updates within its
    1 s locktime, so a few per second keep the entry ours)."""
    if variant is Variant.ARP:
        return 0.2
    return max(0.05, min(0.5, advert_int / 2))


# argv: frames file, interface, interval (s), seconds. Reads and deletes the file first.
SENDER = f"""
import os, socket, sys, time
path, dev, every, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
with open(path) as f:
    frames = [bytes.fromhex(x) for x in f.read().split()]
os.unlink(path)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
end = time.monotonic() + secs
n = 0
while time.monotonic() < end and n < {MAX_SENDS}:
    for fr in frames:
        s.send(fr)
    n += 1
    time.sleep(every)
"""

# The drill's fault script on the rogue host (faults.arm/disarm): inject starts the sender
# detached and keeps its pid; restore stops it and deletes the frames if still there.
# Arguments: frames file, interface, interval, seconds.
SCRIPT = f"""
case "$1" in
inject)
  command -v python3 >/dev/null 2>&1 || {{ echo 'python3: not found' >&2; exit 127; }}
  setsid python3 -c '{SENDER}' "$2" "$3" "$4" "$5" </dev/null >/dev/null 2>&1 &
  echo $! > "$2.pid" ;;
restore)
  pid=$(cat "$2.pid" 2>/dev/null) && [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -f "$2" "$2.pid"; true ;;
esac
"""
