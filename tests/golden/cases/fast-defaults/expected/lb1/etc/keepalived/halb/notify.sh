#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# keepalived calls: notify.sh TYPE NAME STATE PRIORITY. Records the state of each
# instance for `halb status` and logs the change. No value from the spec or the
# inventory is written into this script; the arguments are checked before use.
type=$1 name=$2 state=$3 prio=$4
case "$name" in
    ''|*[!A-Za-z0-9_.-]*|.*) exit 0 ;;  # a file name below /run/halb, nothing else
esac
[ "${#name}" -le 64 ] || exit 0
mkdir -p /run/halb /var/log/halb
# keepalived runs each notify in a process of its own: one that lost the race to a later
# change leaves the state file alone (failback.sh judges it by the VIP on its interface)
if [ ! -x "/etc/keepalived/halb/failback.sh" ] || "/etc/keepalived/halb/failback.sh" current "$name" "$state"; then
    printf '%s\n' "$state" > "/run/halb/vrrp-$name.state.tmp" && mv -f "/run/halb/vrrp-$name.state.tmp" "/run/halb/vrrp-$name.state"
fi
# the handover bridge's host side: keep or let go of the VIP, fail back (failback.sh)
"/etc/keepalived/halb/failback.sh" notify "$name" "$state" </dev/null >/dev/null 2>&1
line="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) $(uname -n) $type $name $state prio=$prio"
printf '%s\n' "$line" >> /var/log/halb/notify.log
command -v logger >/dev/null 2>&1 && logger -t halb-vrrp -- "$line" 2>/dev/null
exit 0
