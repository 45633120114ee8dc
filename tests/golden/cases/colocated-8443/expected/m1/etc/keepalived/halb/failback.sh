#!/bin/sh
# Managed by halb 0.1.0; local edits are replaced on the next deploy.
# Failback through the handover bridge, done by this host alone (halb need not run).
# keepalived's notify script calls `failback.sh notify INSTANCE STATE`:
#   MASTER  keep the VIP local on lo (the old holder's side of the bridge, ready for any
#           move) and clear the instance's returning flag;
#   BACKUP  set the returning flag (a backup stays low); after MASTER: let the VIP go once
#           its frontends are idle (10 s at most); start the agent;
#   FAULT   set the returning flag, let the VIP go at once; STOP: let it go at once.
# The returning flag (keepalived writes 1 there when it starts) lowers the priority like
# a drain. Every backup keeps it set, so no backup preempts a live holder by itself: when
# a lower peer wins an election (backups racing for a dead holder's VIP), the higher
# ones stay below it instead of taking the VIP a second time without the bridge. The
# agent waits until this host has been healthy for 3 s (HAProxy up, every frontend
# with a healthy backend) and finds the one holder from its VRRP adverts. If this host
# outranks it, the agent puts up the taker's side of the bridge, clears the flag so
# keepalived preempts, and removes the bridge 10 s after this host is MASTER (or
# gave up waiting); if not, or while drained, the host stays a low backup (standby).
# `failback.sh undo` removes everything, `failback.sh sync` puts up the holder's side
# where it is missing.
# Every loop is bounded; everything is logged to the notify log.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
readonly RUN=/run/halb/failback
readonly TABLE=halb_failback
readonly HOLD_CS=300
readonly GRACE_CS=1000
readonly WAIT_CS=900
readonly PREEMPT=1

log() {
    mkdir -p /var/log/halb
    printf '%s %s failback %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$(uname -n)" "$*" \
        >> /var/log/halb/notify.log
}
# hundredths of a second since boot
now() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }

# the sysctls are saved and restored under a lock: two instances going MASTER at
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
# INSTANCE -> VIP INTERFACE VRID PRIORITY FLAG
info() {
    case "$1" in
    halb_internal) echo "10.20.0.250 ens3 13 250 /etc/keepalived/halb/returning-halb_internal" ;;
    *) return 1 ;;
    esac
}
# INSTANCE HOLDER-ADDRESS -> the holder's configured priority for it (0: not a peer)
peer_priority() {
    case "$1 $2" in
    "halb_internal 10.20.0.12") echo 230 ;;
    "halb_internal 10.20.0.13") echo 210 ;;
    *) echo 0 ;;
    esac
}
# INSTANCE -> its rule for the taker's bridge (the holder left open), in its family's table
bridge_rule() {
    case "$1" in
    halb_internal) echo 'add chain ip halb_failback pre { type filter hook prerouting priority -150; policy accept; }'
        echo 'add rule ip halb_failback pre ip daddr 10.20.0.250 tcp flags & syn != syn ct state new,invalid counter dup to @HOLDER@ device "ens3" drop' ;;
    esac
}
# the family of an address: ip or ip6 (the watch and the bridge have a table in each)
fam() { case $1 in *:*) echo ip6 ;; *) echo ip ;; esac; }
drop_tables() { for f in ip ip6; do nft delete table $f "$TABLE" 2>/dev/null; done; }
frontends_of() {
    case "$1" in
    halb_internal) echo "apiserver console" ;;
    esac
}

show_stat() {
    if command -v socat >/dev/null 2>&1 && [ -S /run/haproxy/admin.sock ]; then
      echo 'show stat' | socat -t 2 - UNIX-CONNECT:/run/haproxy/admin.sock
    elif command -v curl >/dev/null 2>&1; then
      curl -s -m 3 'http://127.0.0.1:8404/stats;csv'
    fi
}

# every frontend's backend has a healthy server, as this host's HAProxy sees it
healthy() {
    "/etc/keepalived/halb/check_haproxy.sh" || return 1
    stat=$(show_stat) || return 1
    for fe in apiserver console; do
        printf '%s\n' "$stat" | awk -F, -v p="$fe" \
            '$1 == p && $2 == "BACKEND" && $18 ~ /^UP/ { ok = 1 } END { exit !ok }' || return 1
    done
}

# the sessions open on INSTANCE's frontends
sessions() {
    fes=" $(frontends_of "$1") "
    show_stat | awk -F, -v fes="$fes" \
        '$2 == "FRONTEND" && index(fes, " " $1 " ") { n += $5 } END { print n + 0 }'
}

flag() { cat "$1" 2>/dev/null || echo 0; }

stop_release() {
    p=$(cat "$RUN/release-$1.pid" 2>/dev/null) && [ -n "$p" ] && kill "$p" 2>/dev/null
    rm -f "$RUN/release-$1.pid"
}

# 0 unless STATE is no longer INSTANCE's state. keepalived runs each notify in a process
# of its own, so two that come close together can run out of order; the VIP on its
# interface tells which is current (keepalived adds it before it notifies MASTER, and
# removes it before it notifies BACKUP, FAULT or STOP). Not a failback instance: 0.
current() {
    # shellcheck disable=SC2046
    set -- "$2" $(info "$1")
    [ $# -eq 6 ] || return 0
    if ip -o addr show dev "$3" 2>/dev/null | grep -qE " inet6? $2/"; then
        [ "$1" = MASTER ]
    else
        [ "$1" != MASTER ]
    fi
}

on_state() {
    name=$1 state=$2
    if ! current "$name" "$state"; then
        log "$name: $state came after a later change; ignored"
        return 0
    fi
    # shellcheck disable=SC2046
    set -- $(info "$name")
    [ $# -eq 5 ] || return 0
    vip=$1 dev=$2 fl=$5
    mkdir -p "$RUN"
    case "$state" in
    MASTER)
        stop_release "$name"
        rm -f "$RUN/standby-$name"
        echo "$vip $dev" > "$RUN/held-$name"
        keep_local "$vip" "$dev"
        [ "$(flag "$fl")" = 0 ] || echo 0 > "$fl"
        ;;
    BACKUP)
        [ "$(flag "$fl")" != 0 ] || echo 1 > "$fl"
        rm -f "$RUN/standby-$name"
        if [ -f "$RUN/held-$name" ]; then
            stop_release "$name"
            setsid "$0" release "$name" </dev/null >/dev/null 2>&1 &
        fi
        setsid "$0" agent </dev/null >/dev/null 2>&1 &
        ;;
    FAULT|STOP)
        [ "$state" = STOP ] || echo 1 > "$fl"
        rm -f "$RUN/standby-$name"
        stop_release "$name"
        rm -f "$RUN/held-$name"
        let_go "$vip" "$dev"
        ;;
    esac
}

# after MASTER -> BACKUP: keep the VIP local until its frontends are idle (two looks in a
# row, a second after the move at the earliest), 10 s at most
release() {
    name=$1
    # shellcheck disable=SC2046
    set -- $(info "$name")
    [ $# -eq 5 ] || return 0
    vip=$1 dev=$2
    echo $$ > "$RUN/release-$name.pid"
    start=$(now) idle=0 n=0
    while [ $((start + GRACE_CS)) -gt "$(now)" ] && [ "$n" -lt 1000 ]; do
        n=$((n + 1))
        sleep 0.2
        [ "$(now)" -ge $((start + 100)) ] || continue
        if [ "$(sessions "$name")" = 0 ]; then idle=$((idle + 1)); else idle=0; fi
        [ "$idle" -lt 2 ] || break
    done
    [ "$(cat "$RUN/release-$name.pid" 2>/dev/null)" = $$ ] || return 0  # MASTER again
    rm -f "$RUN/held-$name" "$RUN/release-$name.pid"
    let_go "$vip" "$dev"
    log "$name: $vip no longer kept local ($(sessions "$name") sessions left)"
}

# the instances waiting to come back: returning flag set, BACKUP, and not settled as a
# standby since their last state change
returning() {
    for name in halb_internal; do
        # shellcheck disable=SC2046
        set -- $(info "$name")
        [ "$(flag "$5")" != 0 ] || continue
        [ ! -e "$RUN/standby-$name" ] || continue
        [ "$(cat "/run/halb/vrrp-$name.state" 2>/dev/null)" = BACKUP ] || continue
        printf '%s ' "$name"
    done
}

agent() {
    mkdir -p "$RUN"
    # one agent: the lock is a directory (mkdir is atomic); a dead agent's is taken over
    if ! mkdir "$RUN/agent" 2>/dev/null; then
        p=$(cat "$RUN/agent/pid" 2>/dev/null)
        [ -z "$p" ] || kill -0 "$p" 2>/dev/null && return 0
        rm -rf "$RUN/agent"
        mkdir "$RUN/agent" 2>/dev/null || return 0
    fi
    echo $$ > "$RUN/agent/pid"
    trap 'drop_tables; rm -rf "$RUN/agent"' EXIT
    trap 'exit 1' HUP INT TERM
    # a host that fails and returns again while this agent still waits out a grace
    # finds the lock taken: this agent takes that return too
    rounds=0
    while take_back && [ -n "$(returning)" ] && [ "$rounds" -lt 100 ]; do
        rounds=$((rounds + 1))
        log "returning again: $(returning)"
    done
    drop_tables
    rm -rf "$RUN/agent"
    trap - EXIT
    # a notify that came while this agent was finishing found the lock still taken
    [ -z "$(returning)" ] || exec "$0" agent
}

# SET ADDRESS: the address is in the watch table's set (of the address's family)
in_set() { nft get element "$(fam "$2")" "$TABLE" "$1" "{ $2 }" >/dev/null 2>&1; }

# one return: wait until healthy for the hold, then per instance either bridge to the
# holder and clear the flag (this host outranks it), or settle as a standby (it does not,
# or this host is drained); keep the bridge for the grace (less when returning again)
take_back() {
    # the holder of a VIP is the one host that sends adverts for it (priority above 0)
    nft -f - <<EOF || log "cannot watch VRRP adverts; failing back without a bridge"
table ip $TABLE
delete table ip $TABLE
table ip $TABLE {
  set adv_13 { type ipv4_addr; flags timeout; timeout 3500ms; }
  set low_13 { type ipv4_addr; flags timeout; timeout 3500ms; }
  set high_13 { type ipv4_addr; flags timeout; timeout 3500ms; }
  chain watch {
    type filter hook input priority -300; policy accept;
    ip protocol vrrp @th,8,8 13 @th,16,8 != 0 update @adv_13 { ip saddr }
    ip protocol vrrp @th,8,8 13 @th,16,8 1-249 update @low_13 { ip saddr }
    ip protocol vrrp @th,8,8 13 @th,16,8 250-255 update @high_13 { ip saddr }
  }
}
EOF
    since='' n=0 names='' told=''
    log "returning: $(returning); taking back after 3 s healthy"
    while :; do
        n=$((n + 1))
        if [ "$n" -gt 18000 ]; then
            log "not healthy for 3 s within an hour; priority stays low: $(returning)"
            return 1
        fi
        names=$(returning)
        if [ -z "$names" ]; then
            log "nothing left to take back"
            return 0
        fi
        if healthy; then
            [ -n "$since" ] || since=$(now)
            [ $(($(now) - since)) -lt "$HOLD_CS" ] || break
        else
            since=''
        fi
        sleep 0.2
    done
    while :; do
        rules='' clear='' keep='' waiting=''
        for name in $names; do
            # shellcheck disable=SC2046
            set -- $(info "$name")
            vrid=$3
            # the addresses in the set (IPv4 dotted, or IPv6 with colons), nothing else
            holders=$(nft list set "$(fam "$1")" "$TABLE" "adv_$vrid" 2>/dev/null |
                sed -n '/elements/,$p' | tr ',{}=' '    ' | tr ' ' '\n' |
                grep -E '^([0-9]{1,3}\.){3}[0-9]{1,3}$|^[0-9a-f]*:[0-9a-f:]*$' | sort -u | tr '\n' ' ')
            set -- $holders
            if [ "$PREEMPT" != 1 ]; then
                log "$name: nopreempt, no move to bridge"
            elif [ -e "/etc/keepalived/halb/drained" ]; then
                log "$name: drained, stays low until undrained"
                keep="$keep$name "
                continue
            elif [ $# -ne 1 ]; then
                # nobody yet, or a peer that just gave the VIP up still in the set (its
                # adverts time out in a second): wait for the one holder
                waiting="$waiting$name "
                continue
            elif [ "$(peer_priority "$name" "$1")" = 0 ] && [ "${1#fe80:}" = "$1" ]; then
                # (an IPv6 advert without unicast comes from the peer's link-local address,
                # which no inventory names: its priority decides, as for a peer)
                log "$name: the holder $1 is not a peer; stays low (standby)"
                keep="$keep$name "
                continue
            elif ! in_set "low_$vrid" "$1" || in_set "high_$vrid" "$1"; then
                # its adverts (its priority now: lowered while it returns, or drained)
                # are not all below this host's: with the flag cleared it would not win
                log "$name: $1 outranks this host, stays low (standby)"
                keep="$keep$name "
                continue
            else
                rules="$rules$(bridge_rule "$name" | sed "s/@HOLDER@/$1/")
"
                log "$name: bridge to the holder $1"
            fi
            clear="$clear$name "
        done
        [ -z "$clear$keep" ] || break
        # nobody holds these VIPs yet (keepalived starting on every host: a first deploy):
        # clearing the flag now could move them twice, the second time without a bridge.
        # Wait to hear the holder; a host left alone becomes MASTER itself, low as it is.
        [ -n "$told" ] || log "${waiting% }: no single holder heard yet; waiting for one"
        told=1 n=$((n + 1))
        if [ "$n" -gt 18000 ]; then
            log "no holder heard within an hour; priority stays low: ${waiting% }"
            return 1
        fi
        sleep 0.2
        names=$(returning)
        if [ -z "$names" ]; then
            log "nothing left to take back"
            return 0
        fi
    done
    for name in $keep; do : > "$RUN/standby-$name"; done
    names=${clear% }
    [ -n "$names" ] || return 0
    if [ -n "$rules" ]; then
        printf '%s' "$rules" | nft -f - ||
            log "cannot put up the bridge; failing back without it"
    fi
    for name in $names; do
        # shellcheck disable=SC2046
        set -- $(info "$name")
        echo 0 > "$5"
    done
    log "returning flag cleared: $names"
    start=$(now) left=$names
    while [ $((start + WAIT_CS)) -gt "$(now)" ]; do
        left=''
        for name in $names; do
            [ "$(cat "/run/halb/vrrp-$name.state" 2>/dev/null)" = MASTER ] ||
                left="$left$name "
        done
        [ -n "$left" ] || break
        sleep 0.1
    done
    if [ -n "$left" ]; then
        # the holder outranked this host after all (its adverts were from before it
        # raised its own priority): a backup goes back low, as every backup is
        for name in $left; do
            # shellcheck disable=SC2046
            set -- $(info "$name")
            [ "$(cat "/run/halb/vrrp-$name.state" 2>/dev/null)" != BACKUP ] ||
                echo 1 > "$5"
        done
        log "not MASTER for ${left% } after $((WAIT_CS / 100)) s: back low; bridge down in 10 s"
    else
        log "MASTER for $names; bridge down in 10 s"
    fi
    start=$(now)
    while [ $((start + GRACE_CS)) -gt "$(now)" ] && [ -z "$(returning)" ]; do sleep 0.2; done
    n=$( (nft list chain ip "$TABLE" pre; nft list chain ip6 "$TABLE" pre) 2>/dev/null |
        sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
    log "bridge down: $n packets handed to the old holder"
}

# the holder's side for every instance this host is MASTER for now (a deploy that only
# reloaded keepalived saw no state change): `halb drain` runs it before a move
sync() {
    for name in halb_internal; do
        [ "$(cat "/run/halb/vrrp-$name.state" 2>/dev/null)" = MASTER ] || continue
        on_state "$name" MASTER
    done
}

undo() {
    for f in "$RUN"/*.pid "$RUN/agent/pid"; do
        [ -f "$f" ] || continue
        p=$(cat "$f") && [ -n "$p" ] && kill "$p" 2>/dev/null
        rm -f "$f"
    done
    drop_tables
    for f in "$RUN"/held-*; do
        [ -f "$f" ] || continue
        read -r vip dev < "$f"
        rm -f "$f"
        let_go "$vip" "$dev"
    done
    true
}

case "${1-}" in
notify) [ $# -eq 3 ] && on_state "$2" "$3" ;;
current) [ $# -eq 3 ] && current "$2" "$3" ;;
release) [ $# -eq 2 ] && release "$2" ;;
agent) agent ;;
sync) sync ;;
undo) undo ;;
*) echo "usage: $0 notify|current INSTANCE STATE | release INSTANCE | agent | sync | undo" >&2; exit 2 ;;
esac
