"""The steps a deploy runs on a host, as data (pure): the shell scripts of the upload,
backup and rename, and the record of one command of the deploy's chain."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from halb.daemons import ServiceName
from halb.deploy.plan import FileStep

TMP_PREFIX = ".halb-tmp-"
APT_LOCK_WAIT = 300  # seconds apt-get waits for dpkg's lock, within the install's 600 s

# First the $1 folders the files go to: made if missing, and leftovers of an interrupted
# deploy (never live files) dropped. Then each file: created private, filled with exactly
# its byte count (dd reads no further, so the next file's bytes stay on stdin), then given
# its mode. A drop mid-stream leaves a partial temp file and the live file as it was.
UPLOAD_SCRIPT = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do mkdir -p "$1" && rm -f "$1"/'
    + TMP_PREFIX
    + "* || exit 1; shift; n=$((n - 1)); done; "
    'umask 077; while [ $# -ge 3 ]; do : > "$1" && '
    'dd bs=1 count="$3" of="$1" status=none && [ "$(wc -c < "$1")" -eq "$3" ] && '
    'chmod "$2" "$1" || exit 1; shift 3; done'
)
BACKUP_SCRIPT = (
    'b=$1; shift; umask 077; mkdir -p "$b"; '
    'for p in "$@"; do mkdir -p "$b$(dirname "$p")" && cp -a "$p" "$b$p" || exit 1; done'
)
MOVE_SCRIPT = 'while [ $# -gt 1 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'


class StepKind(StrEnum):
    VALIDATE = "validate"  # a new file checked on the target, before anything is replaced
    BACKUP = "backup"
    MOVE = "move"  # new files renamed over the live ones
    SYSCTL = "sysctl"
    DAEMON_RELOAD = "daemon-reload"
    RELOAD = "reload"
    VERIFY = "verify"  # both services run: their main pids
    ADDRS = "addrs"  # the host's addresses after the change, the VIP check's first look
    # halb's nftables redirect loaded once HAProxy runs on its new config, or the table a
    # former spec left dropped (halb/redirect.py)
    REDIRECT = "redirect"
    # halb's VRRP filter loaded from its new file, once the host's own MACs are checked
    # to be the ones it was rendered with (halb/vrrp_filter.py)
    VRRP_FILTER = "vrrp-filter"


@dataclass(frozen=True)
class Step:
    """One command of the chain, and what it changes if it ran (for the rollback)."""

    argv: list[str]
    kind: StepKind
    files: tuple[FileStep, ...] = ()
    service: ServiceName | None = None


def tmp_path(path: str) -> str:
    """A new temp file's name beside `path` (same folder: the rename is atomic)."""
    p = PurePosixPath(path)
    return str(p.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}")
