#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# keepalived calls: notify.sh TYPE NAME STATE PRIORITY. Records the state of each
# instance for `halb status` and logs the change.
type=$1 name=$2 state=$3 prio=$4
mkdir -p /run/halb /var/log/halb
printf '%s\n' "$state" > "/run/halb/vrrp-$name.state.tmp" && mv -f "/run/halb/vrrp-$name.state.tmp" "/run/halb/vrrp-$name.state"
line="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) lb2 $type $name $state prio=$prio"
printf '%s\n' "$line" >> /var/log/halb/notify.log
command -v logger >/dev/null 2>&1 && logger -t halb-vrrp "$line" 2>/dev/null
exit 0
