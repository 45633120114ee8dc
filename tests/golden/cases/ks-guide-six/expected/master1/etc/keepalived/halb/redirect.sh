#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# halb's redirect of the public ports on master1 (rules in redirect.nft beside it).
#   redirect.sh load            (deploy) load the table whole, with the VIPs that are
#                               healthy now in its set: one nft transaction
#   redirect.sh sync INSTANCE [STATE]
#                               (notify.sh, at each VRRP state change) FAULT (HAProxy exited):
#                               the instance's VIP out of the set at once, with no other
#                               command first; else in the set if HAProxy is healthy
#   redirect.sh exited          (HAProxy's service manager, as HAProxy exits) every VIP out
#                               of the set in one command: this host's own backends answer
#   redirect.sh check INSTANCE  (keepalived's check, every second) 0 while HAProxy is
#                               healthy, and the VIP back in the set after its exit; while
#                               HAProxy is down, 0 as long as this host's own backend passes
#                               HAProxy's check of it (/readyz, HTTP, TCP) on each public port
#                               of the VIP (the fall-through keeps the VIP answering, no
#                               takeover), 1 (FAULT: the VIP moves) when not
#   redirect.sh remove          delete the table
# After a reboot the table is gone until keepalived's first state change: sync loads it.
# No value from the spec or the inventory reaches this script but checked addresses.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
dir=${0%/*}
vip_of() {
    case "$1" in
        halb_internal) echo 192.168.0.253 ;;
        *) return 1 ;;
    esac
}
healthy() {  # $1 = instance, $2 = its state (default: the one notify.sh last recorded)
    state=${2:-$(cat /run/halb/vrrp-"$1".state 2>/dev/null)}
    [ "$state" != FAULT ] || return 1
    [ "$(cat /run/halb-haproxy.exited 2>/dev/null)" != 1 ] || return 1
    "$dir/check_haproxy.sh"
}
# the instance's VIP taken out by HAProxy's exit, to put back once HAProxy is healthy
off() { echo "/run/halb/redirect-off-$1"; }
falls_through() {  # this host's own backends pass HAProxy's check of them, on each public port
    case "$1" in
        halb_internal) ports="6443:readyz 30880:http" ;;
        *) return 1 ;;
    esac
    for pc in $ports; do
        p=${pc%%:*}
        case "${pc#*:}" in
        readyz) url=https://192.168.0.1:$p/readyz ok='200' ;;
        http) url=http://192.168.0.1:$p/ ok='[234][0-9][0-9]' ;;
        *) url='' ;;
        esac
        if [ -n "$url" ] && command -v curl >/dev/null 2>&1; then
            code=$(curl -sk --max-time 0.9 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)
            # shellcheck disable=SC2254
            case "$code" in $ok) ;; *) return 1 ;; esac
        else  # a TCP check, or no curl here: a connection is enough
            timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' 192.168.0.1 "$p" 2>/dev/null || return 1
        fi
    done
}
case "${1-}" in
exited)
    nft flush set ip halb_redirect healthy 2>/dev/null
    mkdir -p /run/halb
    : > "$(off halb_internal)"
    ;;
check)
    vip=$(vip_of "${2-}") || exit 1
    if "$dir/check_haproxy.sh"; then
        [ -e "$(off "$2")" ] || exit 0
        # back in the set once HAProxy has started (its service manager has written 0 to
        # the exit file); a FAULT instance gets it back from notify.sh as it recovers
        state=$(cat /run/halb/vrrp-"$2".state 2>/dev/null)
        if [ "$state" = FAULT ] || { healthy "$2" && sh "$0" sync "$2"; }; then
            rm -f "$(off "$2")"
        fi
        exit 0
    fi
    if [ ! -e "$(off "$2")" ]; then  # HAProxy down, and its exit hook not run (yet)
        mkdir -p /run/halb && : > "$(off "$2")"
        nft delete element ip halb_redirect healthy "{ $vip }" 2>/dev/null
    fi
    falls_through "$2"
    ;;
load)
    {
        cat "$dir/redirect.nft" || exit 1
        healthy halb_internal && echo "add element ip halb_redirect healthy { 192.168.0.253 }"
        :
    } | nft -f -
    ;;
sync)
    vip=$(vip_of "${2-}") || exit 0
    if [ "${3-}" = FAULT ]; then
        # HAProxy exited (one process serves every VIP): all of them out in one command,
        # so the second instance's FAULT finds nothing left to do
        exited=0; read -r exited < /run/halb-haproxy.exited 2>/dev/null
        if [ "$exited" = 1 ]; then
            nft flush set ip halb_redirect healthy 2>/dev/null
        else
            nft delete element ip halb_redirect healthy "{ $vip }" 2>/dev/null
        fi
        exit 0
    fi
    nft list table ip halb_redirect >/dev/null 2>&1 || exec sh "$0" load
    if healthy "$2" "${3-}"; then
        nft add element ip halb_redirect healthy "{ $vip }"
    else
        nft delete element ip halb_redirect healthy "{ $vip }" 2>/dev/null || :
    fi
    ;;
remove)
    nft list table ip halb_redirect >/dev/null 2>&1 || exit 0
    nft delete table ip halb_redirect
    ;;
*)
    echo "usage: redirect.sh load|sync INSTANCE|exited|check INSTANCE|remove" >&2
    exit 2
    ;;
esac
