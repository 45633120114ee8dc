#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# keepalived runs it two ways. `check_haproxy.sh drained`: fails while `halb drain` has
# left a flag file named "drained" next to this script (a root-only folder), which lowers
# this host's priority below every peer's. Without an argument: healthy when the HAProxy
# master process named in its pid file is alive and its admin socket is there; when not,
# the VRRP instances go to FAULT and give the VIPs up at once.
if [ "${1-}" = drained ]; then
    [ -e "${0%/*}/drained" ] && exit 1
    exit 0
fi
pidfile=/run/haproxy.pid
[ -r "$pidfile" ] || exit 1
pid=$(head -n 1 "$pidfile")
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || exit 1
# a killed master that nobody has reaped yet still passes kill -0: a zombie is dead
grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && exit 1
[ -S /run/haproxy/admin.sock ] || exit 1
exit 0
