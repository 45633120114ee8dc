"""The install log: every line the installer printed, mode 600, bounded.

A line repeated back to back is written once with a count (a loop that re-prints a
prompt or an empty line cannot fill the disk), and past `cap` bytes the log keeps only a
count and, at the end, the last lines: those say why an install failed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from pathlib import Path

from halb.errors import InputError

LOG_CAP = 64 * 1024 * 1024
TAIL_LINES = 200


def open_log(path: Path) -> int:
    """The log, opened for writing: a regular file, never through a planted symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        why = "a symbolic link" if e.errno == errno.ELOOP else (e.strerror or str(e))
        raise InputError(f"{path}: cannot write the install log: {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{path}: cannot write the install log: not a regular file")
    os.set_blocking(fd, True)
    os.ftruncate(fd, 0)  # only now: a device or FIFO was never truncated or written
    os.fchmod(fd, 0o600)  # an existing file keeps no wider mode
    return fd


class InstallLog:
    def __init__(self, path: Path, cap: int = LOG_CAP) -> None:
        self.path = path
        self.cap = cap
        self.fd = open_log(path)
        self.size = 0
        self.capped = False
        self.dropped = 0
        self._last: bytes | None = None
        self._repeats = 0
        self._tail: deque[bytes] = deque(maxlen=TAIL_LINES)

    def note(self, text: str) -> None:
        """halb's own line (starts with '#')."""
        self._flush_repeats()
        self._write(f"# {text}\n".encode(), force=True)

    def line(self, raw: bytes) -> bool:
        """One line of output, without its newline; False when it only raised a count."""
        if raw == self._last:
            self._repeats += 1
            return False
        self._flush_repeats()
        self._last = raw
        self._write(raw + b"\n")
        return True

    def close(self, partial: bytes = b"") -> None:
        if partial:
            self.line(partial)
        self._flush_repeats()
        if self.capped:
            self._write(
                f"# {self.dropped} lines after the cap were not kept; the last "
                f"{len(self._tail)} follow\n".encode(),
                force=True,
            )
            for raw in self._tail:
                self._write(raw + b"\n", force=True)
        os.close(self.fd)

    def _flush_repeats(self) -> None:
        if self._repeats:
            n, self._repeats = self._repeats, 0
            self._write(f"# (the line above repeated {n} more times)\n".encode())

    def _write(self, data: bytes, force: bool = False) -> None:
        if not force and self.size + len(data) > self.cap:
            if not self.capped:
                self.capped = True
                msg = f"# log capped at {self.cap} bytes; only the last lines are kept\n"
                os.write(self.fd, msg.encode())
            self.dropped += 1
            self._tail.append(data.rstrip(b"\n"))
            return
        os.write(self.fd, data)
        self.size += len(data)
