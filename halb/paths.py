"""Every path halb reads or writes on a target host, named once.

The templates under halb/templates/ write some of these too (the notify script records
VRRP states under VRRP_STATE_DIR); a change here needs the same change there.
"""

from __future__ import annotations

# configs halb renders and deploys
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
SCRIPT_DIR = "/etc/keepalived/halb"
CHECK_SCRIPT = f"{SCRIPT_DIR}/check_haproxy.sh"
NOTIFY_SCRIPT = f"{SCRIPT_DIR}/notify.sh"
# the nftables table that sends VIP:public port to HAProxy's internal port where the LB
# hosts are masters or nodes (halb/redirect.py), and the script that loads and updates it
REDIRECT_NFT = f"{SCRIPT_DIR}/redirect.nft"
REDIRECT_SCRIPT = f"{SCRIPT_DIR}/redirect.sh"
REDIRECT_TABLE = "halb_redirect"  # family ip
# the nftables table that accepts VRRP on the VIPs' interfaces only from the LB hosts'
# (address, MAC) pairs and counts and drops the rest (halb/vrrp_filter.py)
VRRP_NFT = f"{SCRIPT_DIR}/vrrp.nft"
VRRP_TABLE = "halb_vrrp"  # family inet
# `halb drain`: the check script reports "down" while this file exists next to it.
DRAIN_FLAG = f"{SCRIPT_DIR}/drained"
# Failback: keepalived tracks RETURNING_FLAG + instance (1: this host came back, keep its
# priority low) and writes 1 there when it starts; failback.sh clears it once the host
# has been healthy for a while and the handover bridge is up (halb/drain/handover.py).
RETURNING_FLAG = f"{SCRIPT_DIR}/returning-"
FAILBACK_SCRIPT = f"{SCRIPT_DIR}/failback.sh"
FAILBACK_TABLE = "halb_failback"  # ip and ip6: the holder watch and the taker's bridge
SYSCTL_CONF = "/etc/sysctl.d/90-halb.conf"
SYSTEMD_DIR = "/etc/systemd/"
HAPROXY_DROPIN = "/etc/systemd/system/haproxy.service.d/90-halb.conf"
KEEPALIVED_DROPIN = "/etc/systemd/system/keepalived.service.d/90-halb.conf"


def dropin_dir(service: str) -> str:
    return f"/etc/systemd/system/{service}.service.d/"


OS_RELEASE = "/etc/os-release"

# deploy state: backups and the lock that keeps two deploys apart
DEPLOY_STATE_DIR = "/var/lib/halb"
BACKUP_DIR = f"{DEPLOY_STATE_DIR}/backup"
LOCK_FILE = f"{DEPLOY_STATE_DIR}/deploy.lock"
HOLDER_FILE = f"{DEPLOY_STATE_DIR}/deploy.holder"

# runtime
VRRP_STATE_DIR = "/run/halb"  # vrrp-<instance>.state, written by the notify script
HAPROXY_RUN_DIR = "/run/haproxy"
RUNTIME_DIRS = (HAPROXY_RUN_DIR, VRRP_STATE_DIR)
FAILBACK_STATE_DIR = f"{VRRP_STATE_DIR}/failback"  # failback.sh's pids and saved sysctls
HAPROXY_ADMIN_SOCKET = f"{HAPROXY_RUN_DIR}/admin.sock"
HAPROXY_STATS_CSV_URL = "http://127.0.0.1:8404/stats;csv"
LOG_DIR = "/var/log/halb"
# 1 once HAProxy's master has exited, 0 once it has started: written by its service
# manager (systemd's ExecStopPost / ExecStartPost, or the supervisor's watcher shell) and
# tracked by keepalived, which goes to FAULT at once instead of at the next check
HAPROXY_EXIT_FILE = "/run/halb-haproxy.exited"

# pid files of the plain supervisor (hosts without systemd)
HAPROXY_PIDFILE = "/run/haproxy.pid"
KEEPALIVED_PIDFILE = "/run/keepalived.pid"
KEEPALIVED_VRRP_PIDFILE = "/run/keepalived_vrrp.pid"
KEEPALIVED_CHECKERS_PIDFILE = "/run/keepalived_checkers.pid"

# the lab's hosts: the stand-in apiserver and console read their answers (and the
# master its TLS key) here, which Lab.set_control and the drill's apiserver fault change
LAB_CONTROL_DIR = "/run/halb-lab"

# Everything a deploy leaves on an LB host, in any mode: `halb undeploy` (halb/deploy/
# undeploy.py) removes exactly this. A file or table a deploy starts writing goes here too
# (tests/unit/test_undeploy.py checks each rendered file is listed).
# Files halb renders: removed when they carry halb's header, and the file a deploy replaced
# put back from its first backup under BACKUP_DIR (a file without the header is not halb's
# and is left alone, so a second undeploy changes nothing).
DEPLOYED_FILES = (
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    CHECK_SCRIPT,
    NOTIFY_SCRIPT,
    REDIRECT_NFT,
    REDIRECT_SCRIPT,
    VRRP_NFT,
    FAILBACK_SCRIPT,
    SYSCTL_CONF,
    HAPROXY_DROPIN,
    KEEPALIVED_DROPIN,
)
# The mark every file of DEPLOYED_FILES carries (halb/render.py's HEADER, the drop-ins).
MANAGED_MARK = "Managed by halb"
# Runtime state and flags: removed.
DEPLOYED_STATE = (DRAIN_FLAG, HAPROXY_EXIT_FILE, VRRP_STATE_DIR)
# Folders a deploy made: removed once empty.
DEPLOYED_DIRS = (SCRIPT_DIR, dropin_dir("haproxy"), dropin_dir("keepalived"))
# nftables tables (family, name): deleted.
DEPLOYED_TABLES = (
    ("ip", REDIRECT_TABLE),
    ("inet", VRRP_TABLE),
    ("ip", FAILBACK_TABLE),
    ("ip6", FAILBACK_TABLE),
)
