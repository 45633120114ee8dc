"""Reading a user's input files within bounds, and writing files atomically.

Every file halb reads from a user (spec, inventory, password file, installer config) goes
through `read_input`: regular files only (a FIFO, a device or /dev/zero is refused before
a byte is read) and at most `MAX_INPUT_BYTES`. Every file halb writes goes through
`atomic_write`: a temp file created exclusively beside the target (never through a
planted symlink), the final mode set before any data, then one rename.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from halb.errors import InputError

MAX_INPUT_BYTES = 4 * 1024 * 1024  # far above any real inventory or config


def read_input(
    path: Path,
    what: str = "file",
    *,
    limit: int = MAX_INPUT_BYTES,
    error: type[InputError] = InputError,
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else `error` naming the path."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; refused just below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{path}: is a directory, not a {what}")
        raise error(f"{path}: not a regular file (a device, FIFO or socket); halb reads files")
    if st.st_size > limit:
        os.close(fd)
        raise error(f"{path}: {what} is {st.st_size} bytes; halb reads at most {limit}")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if len(data) > limit:  # grew while being read
        raise error(f"{path}: {what} is larger than {limit} bytes; halb reads at most {limit}")
    return data


def atomic_write(
    path: Path,
    data: bytes | str,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Replace `path` with `data` in one rename.

    `mode` None keeps the mode of the file being replaced (0644 for a new one); `owner`
    (uid, gid) is set on the temp file before any data, so the new file never has another
    owner. The temp file is made with O_EXCL in the target's folder, so a symlink planted
    under a predictable name is never followed, and it is removed if anything fails.
    """
    raw = data.encode() if isinstance(data, str) else data
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)  # after fchown, which clears set-id bits
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
