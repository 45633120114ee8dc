"""The installer config as a user's file: read bounded, written back as the user had it.

Bytes are decoded without newline translation (CRLF stays CRLF); the backup is a copy of
exactly the bytes that were edited, made exclusively with the file's mode and owner; the
replacement is one rename, and only if nobody changed the file meanwhile.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

from halb.errors import InputError
from halb.files import atomic_write, read_input
from halb.installers.limits import MAX_CONFIG_BYTES


def read_config(path: Path) -> tuple[bytes, str]:
    """(raw bytes, text) of an installer config, or InputError naming it."""
    raw = read_input(path, "config file", limit=MAX_CONFIG_BYTES)
    return raw, decode(raw, path)


def decode(raw: bytes, path: Path) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: not UTF-8 text (byte {e.start}); save the installer config as UTF-8"
        ) from None
    if "\0" in text:
        raise InputError(f"{path}: holds NUL bytes; expected a YAML text file")
    return text


def writable(target: Path, path: Path) -> os.stat_result:
    """Refuse a file its owner made read-only (root could write it anyway)."""
    st = target.stat()
    if not st.st_mode & 0o222:
        raise InputError(
            f"{path}: read-only (mode {stat.S_IMODE(st.st_mode):04o}); "
            "make it writable to let halb edit it"
        )
    folder = target.parent.stat()
    if not folder.st_mode & 0o222 or not os.access(target.parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: folder {target.parent} is not writable; nothing changed")
    return st


def backup_file(target: Path, raw: bytes, st: os.stat_result, now: datetime) -> Path:
    """A copy of the bytes halb read, same mode and owner, made exclusively."""
    stamp = now.strftime("%Y%m%d%H%M%S")
    for n in range(1000):  # two writes in one second keep both backups
        suffix = f".{n}" if n else ""
        backup = target.with_name(f"{target.name}.halb-bak-{stamp}{suffix}")
        try:
            fd = os.open(
                backup,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except FileExistsError:
            continue
        except OSError as e:
            raise InputError(
                f"{target}: cannot back it up ({e.strerror or e}); nothing changed"
            ) from None
        try:
            with os.fdopen(fd, "wb") as f:
                if os.geteuid() == 0:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.utime(backup, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        except OSError as e:
            backup.unlink(missing_ok=True)
            raise InputError(
                f"{target}: cannot back it up ({e.strerror or e}); nothing changed"
            ) from None
        except BaseException:
            backup.unlink(missing_ok=True)
            raise
        return backup
    raise InputError(f"{target}: too many backups from this second; try again")


def replace_file(target: Path, path: Path, text: str, raw: bytes, st: os.stat_result) -> None:
    """Write `text` over `target` unless someone changed it since halb read `raw`."""
    try:
        now_st = target.stat()
        if (now_st.st_ino, now_st.st_size, now_st.st_mtime_ns) != (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        ) or read_input(target, "config file", limit=MAX_CONFIG_BYTES) != raw:
            raise InputError(f"{path}: changed while halb was editing it; nothing written")
        owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
        atomic_write(target, text.encode("utf-8"), mode=stat.S_IMODE(st.st_mode), owner=owner)
    except OSError as e:
        raise InputError(f"{path}: cannot replace it: {e.strerror or e}; nothing changed") from None
