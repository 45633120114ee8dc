"""One error family; the CLI turns it into a message and an exit status."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a check halb ran failed: split brain, backend down, drill over budget
    BAD_INPUT = 2  # the user's input is wrong; nothing was changed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class HalbError(Exception):
    """Base of every error halb reports to a user. The message is shown as is."""

    exit_status: ExitStatus = ExitStatus.CHECK_FAILED


class InputError(HalbError):
    """Bad input: the message names the file, key or host."""

    exit_status = ExitStatus.BAD_INPUT


class InventoryError(InputError):
    pass


class SpecError(InputError):
    pass


class Interrupted(HalbError):
    """The user pressed Ctrl-C."""

    exit_status = ExitStatus.INTERRUPTED


class CheckFailed(HalbError):
    """A check ran and found a problem (exit 1)."""


class TransportError(HalbError):
    """A command could not be run on a host (connection refused, auth failed, timeout)."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host


class DeployError(HalbError):
    pass
