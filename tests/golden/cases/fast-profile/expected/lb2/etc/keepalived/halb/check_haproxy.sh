#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# Healthy when the HAProxy master process named in its pid file is alive and answers on
# its admin socket; keepalived lowers this host's priority when it is not.
# `halb drain` leaves a flag file named "drained" next to this script (a root-only
# folder): while it exists this host reports itself down, so every peer outranks it.
[ -e "${0%/*}/drained" ] && exit 1
pidfile=/run/haproxy.pid
[ -r "$pidfile" ] || exit 1
pid=$(head -n 1 "$pidfile")
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || exit 1
[ -S /run/haproxy/admin.sock ] || exit 1
exit 0
