#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# halb's redirect of the public ports on master1 (rules in redirect.nft beside it).
#   redirect.sh load            (deploy) load the table whole, with the VIPs that are
#                               healthy now in its set: one nft transaction
#   redirect.sh sync INSTANCE   (notify.sh, at each VRRP state change) the instance's VIP in
#                               the set unless keepalived reports it FAULT (HAProxy exited)
#   redirect.sh remove          delete the table
#   redirect.sh status          print "active VIP..." or "inactive"
# No value from the spec or the inventory reaches this script but checked addresses.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
dir=${0%/*}
vip_of() {
    case "$1" in
        halb_internal) echo 192.168.0.253 ;;
        *) return 1 ;;
    esac
}
healthy() {  # $1 = instance: HAProxy runs and keepalived does not report FAULT
    [ "$(cat /run/halb/vrrp-"$1".state 2>/dev/null)" != FAULT ] || return 1
    [ "$(cat /run/halb-haproxy.exited 2>/dev/null)" != 1 ] || return 1
    "$dir/check_haproxy.sh"
}
case "${1-}" in
load)
    {
        cat "$dir/redirect.nft" || exit 1
        healthy halb_internal && echo "add element ip halb_redirect healthy { 192.168.0.253 }"
        :
    } | nft -f -
    ;;
sync)
    vip=$(vip_of "${2-}") || exit 0
    if healthy "$2"; then
        nft add element ip halb_redirect healthy "{ $vip }"
    else
        nft delete element ip halb_redirect healthy "{ $vip }" 2>/dev/null || :
    fi
    ;;
remove)
    nft list table ip halb_redirect >/dev/null 2>&1 || exit 0
    nft delete table ip halb_redirect
    ;;
status)
    out=$(nft list set ip halb_redirect healthy 2>/dev/null) || { echo absent; exit 0; }
    vips=$(printf '%s\n' "$out" | sed -n 's/.*elements = { *\(.*\) *}.*/\1/p' | tr -d ',')
    if [ -n "$vips" ]; then echo "active $vips"; else echo inactive; fi
    ;;
*)
    echo "usage: redirect.sh load|sync INSTANCE|remove|status" >&2
    exit 2
    ;;
esac
