"""`halb undeploy`: take off each LB host what deploy put there (halb/paths.py lists it:
DEPLOYED_FILES, DEPLOYED_STATE, DEPLOYED_DIRS, DEPLOYED_TABLES).

One look per host under the deploy lock (what of that list is there, which file a deploy
replaced, which service runs) gives a plan as data; then keepalived stops first (its
priority-0 advert hands the VIPs to a peer at once), HAProxy after it, and one command
deletes the tables, puts back the files a deploy replaced, removes halb's own files and
state. Only files with halb's header count as halb's, and a service stops only while its
config is halb's: a second undeploy finds nothing to do.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from halb.daemons import SERVICES, ServiceName
from halb.deploy.locks import LocalLock, RemoteLock, utc_now
from halb.deploy.run import Hosts, _open, _targets
from halb.errors import HalbError
from halb.paths import (
    BACKUP_DIR,
    DEPLOYED_DIRS,
    DEPLOYED_FILES,
    DEPLOYED_STATE,
    DEPLOYED_TABLES,
    FAILBACK_SCRIPT,
    MANAGED_MARK,
    RETURNING_FLAG,
    SYSTEMD_DIR,
)
from halb.services import CONFIG_OF, ServiceManager
from halb.shell import batch, sh, split_batch
from halb.spec import Cluster
from halb.transport import TransportFactory, for_host

Progress = Callable[[str, str], None]

# ------------------------------------------------------------------------ the look (pure)

# $1 backup dir, $2 the mark, $3 file count, then the files, the state paths, then the
# tables as "family name". Prints `file PATH` for each of halb's files, `orig PATH BACKUP`
# where the oldest backup of it is no file of halb's (what the first deploy replaced),
# `state PATH` and `table FAMILY NAME` for what is there.
_LOOK = r"""
b=$1 mark=$2 n=$3; shift 3
stamps=$(ls -1 "$b" 2>/dev/null | sort)
while [ "$n" -gt 0 ]; do
  p=$1; shift; n=$((n - 1))
  [ -f "$p" ] && grep -qF "$mark" "$p" 2>/dev/null || continue
  echo "file $p"
  for s in $stamps; do
    [ -f "$b/$s$p" ] || continue
    grep -qF "$mark" "$b/$s$p" || echo "orig $p $b/$s$p"
    break
  done
done
while [ $# -gt 0 ]; do
  case $1 in
    table:*) t=${1#table:}; command -v nft >/dev/null 2>&1 &&
      nft list table $t >/dev/null 2>&1 && echo "table $t" ;;
    *) [ -e "$1" ] && echo "state $1" ;;
  esac
  shift
done
:
"""


def look_argv() -> list[str]:
    tables = [f"table:{fam} {name}" for fam, name in DEPLOYED_TABLES]
    return sh(
        _LOOK, BACKUP_DIR, MANAGED_MARK, str(len(DEPLOYED_FILES)), *DEPLOYED_FILES,
        *DEPLOYED_STATE, *tables,
    )  # fmt: skip


@dataclass(frozen=True)
class HostLook:
    files: tuple[str, ...]  # halb's files on the host
    originals: dict[str, str]  # path -> the backup of the file the first deploy replaced
    state: tuple[str, ...]
    tables: tuple[str, ...]  # "family name"
    running: dict[ServiceName, bool]


def parse_look(
    text: str,
) -> tuple[tuple[str, ...], dict[str, str], tuple[str, ...], tuple[str, ...]]:
    files: list[str] = []
    originals: dict[str, str] = {}
    state: list[str] = []
    tables: list[str] = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "file" and rest in DEPLOYED_FILES:
            files.append(rest)
        elif kind == "orig":
            path, _, backup = rest.partition(" ")
            if path in DEPLOYED_FILES and backup.startswith(f"{BACKUP_DIR}/"):
                originals[path] = backup
        elif kind == "state" and rest in DEPLOYED_STATE:
            state.append(rest)
        elif kind == "table" and rest in {f"{f} {n}" for f, n in DEPLOYED_TABLES}:
            tables.append(rest)
    return tuple(files), originals, tuple(state), tuple(tables)


@dataclass(frozen=True)
class HostUndo:
    """What undeploy does on one host, as data (`--dry-run` prints it)."""

    host: str
    stop: tuple[ServiceName, ...]  # keepalived first
    restore: dict[str, str]  # path -> backup
    remove: tuple[str, ...]
    state: tuple[str, ...]
    tables: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.stop or self.restore or self.remove or self.state or self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stop": list(self.stop),
            "restore": sorted(self.restore),
            "remove": list(self.remove),
            "state": list(self.state),
            "tables": list(self.tables),
        }


def plan_undo(host: str, look: HostLook) -> HostUndo:
    # a service stops only while its config is halb's: keepalived first, so the VIPs go
    # to a peer with its priority-0 advert before HAProxy stops behind them
    order: tuple[ServiceName, ...] = ("keepalived", "haproxy")
    stop = tuple(n for n in order if look.running.get(n) and CONFIG_OF[n] in look.files)
    restore = {p: b for p, b in look.originals.items() if p in look.files}
    remove = tuple(p for p in look.files if p not in restore)
    return HostUndo(host, stop, restore, remove, look.state, look.tables)


# $1 systemd dir (a daemon-reload when a removed file is below it), $2 count of restores,
# then restore pairs (backup path), then `--`, files to remove, `--`, state, `--`, tables,
# `--`, folders to remove once empty
_UNDO = r"""
sd=$1 n=$2; shift 2; reload=
# failback.sh's bridge, held routes and saved sysctls first, then its per-VIP flags
[ ! -x "$FB" ] || "$FB" undo >/dev/null 2>&1
rm -f "$RF"*
while [ "$n" -gt 0 ]; do
  cp -a "$2" "$1.halb-undeploy" && mv -f "$1.halb-undeploy" "$1" || exit 1
  case $1 in "$sd"*) reload=1 ;; esac
  shift 2; n=$((n - 1))
done
shift
while [ "$1" != -- ]; do
  rm -f "$1" || exit 1
  case $1 in "$sd"*) reload=1 ;; esac
  shift
done
shift
while [ "$1" != -- ]; do rm -rf "$1" || exit 1; shift; done
shift
# (failback.sh undo above may have deleted its table already)
while [ "$1" != -- ]; do
  ! nft list table $1 >/dev/null 2>&1 || nft delete table $1 || exit 1; shift
done
shift
for d in "$@"; do rmdir "$d" 2>/dev/null; done
[ -z "$reload" ] || ! command -v systemctl >/dev/null 2>&1 || systemctl daemon-reload
"""


def undo_argv(u: HostUndo) -> list[str]:
    pairs = [x for p, b in sorted(u.restore.items()) for x in (p, b)]
    head = f"FB={FAILBACK_SCRIPT} RF={RETURNING_FLAG}\n"
    return sh(
        head + _UNDO, SYSTEMD_DIR, str(len(u.restore)), *pairs, "--", *u.remove, "--", *u.state,
        "--", *u.tables, "--", *DEPLOYED_DIRS,
    )  # fmt: skip


# ------------------------------------------------------------------------------ effects


@dataclass
class HostOutcome:
    host: str
    undo: HostUndo | None = None
    status: str = "pending"  # unchanged, changed, failed
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("unchanged", "changed")


@dataclass
class UndeployReport:
    hosts: list[HostOutcome] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    @property
    def changed(self) -> bool:
        if self.dry_run:
            return any(h.undo is not None and h.undo.changed for h in self.hosts)
        return any(h.status == "changed" for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "seconds": self.seconds,
            "hosts": {
                h.host: {
                    "status": h.status,
                    "error": h.error,
                    "seconds": h.seconds,
                    **(h.undo.as_dict() if h.undo else {}),
                }
                for h in self.hosts
            },
        }


def _look(hosts: Hosts, name: str) -> HostLook:
    t, svc = hosts.transports[name], hosts.managers[name]
    argv, marker = batch([look_argv(), svc.pids_argv(SERVICES)])
    rl = RemoteLock(t, f"{socket.gethostname()} pid {os.getpid()} since {utc_now()} (undeploy)")
    out = rl.acquire(timeout=60, then=argv, done=lambda o: split_batch(o, marker, 2) is not None)
    hosts.locks.append(rl)
    parts = split_batch(out, marker, 2)
    if parts is None:
        raise t.error("the undeploy's look at the host was cut short")
    (rc, look_out), (pids_rc, pids_out) = parts
    if rc != 0:
        raise t.error(f"the undeploy's look at the host exited {rc}: {look_out.strip()}")
    files, originals, state, tables = parse_look(look_out)
    pids = svc.parse_pids(pids_out if pids_rc == 0 else "", SERVICES)
    return HostLook(files, originals, state, tables, {n: pids[n] is not None for n in SERVICES})


def _apply(svc: ServiceManager, u: HostUndo, say: Callable[[str], None]) -> None:
    for name in u.stop:
        say(f"stopping {name}")
        svc.stop(name)
        svc.disable(name)
    if u.restore or u.remove or u.state or u.tables:
        svc.t.run(undo_argv(u), timeout=60, check=True)
    for p in sorted(u.restore):
        say(f"restored {p} (as before the first deploy)")
    if u.remove:
        say(f"removed {', '.join(u.remove)}")
    for t in u.tables:
        say(f"deleted nftables table {t}")


def undeploy(
    cluster: Cluster,
    *,
    limit: Sequence[str] = (),
    dry_run: bool = False,
    transport_for: TransportFactory = for_host,
    progress: Progress = lambda host, msg: None,
) -> UndeployReport:
    """Every LB host (or the `limit` ones) back to before halb's deploys, all at once."""
    t0 = time.monotonic()
    targets = _targets(cluster, limit)  # unknown hosts: InputError before any connection
    local_lock = LocalLock(cluster.config_path)
    hosts = Hosts()
    report = UndeployReport(dry_run=dry_run)

    def one(name: str) -> HostOutcome:
        res = HostOutcome(name)
        start = time.monotonic()
        try:
            res.undo = plan_undo(name, _look(hosts, name))
            progress(name, "connected")
            if not res.undo.changed:
                res.status = "unchanged"
                progress(name, "nothing of halb's here")
            elif dry_run:
                res.status = "unchanged"
            else:
                _apply(hosts.managers[name], res.undo, lambda m: progress(name, m))
                res.status = "changed"
                progress(name, f"done in {time.monotonic() - start:.1f}s")
        except HalbError as e:
            res.status, res.error = "failed", str(e)
            progress(name, f"FAILED: {e}")
        res.seconds = round(time.monotonic() - start, 3)
        return res

    try:
        local_lock.acquire()
        _open(hosts, cluster, transport_for)
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            report.hosts = list(pool.map(one, targets))
    finally:
        hosts.close()
        local_lock.release()
    report.seconds = round(time.monotonic() - t0, 3)
    return report


def undo_lines(report: UndeployReport) -> list[str]:
    """The plan of each host, for `--dry-run`."""
    lines: list[str] = []
    for h in report.hosts:
        u = h.undo
        if u is None or not u.changed:
            lines.append(f"{h.host}: {h.error or 'nothing to undo'}")
            continue
        lines.append(f"{h.host}:")
        lines += [f"  stop      {n}" for n in u.stop]
        lines += [f"  restore   {p} from {b}" for p, b in sorted(u.restore.items())]
        lines += [f"  remove    {p}" for p in (*u.remove, *u.state)]
        lines += [f"  delete    nftables table {t}" for t in u.tables]
    return lines
