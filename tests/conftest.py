"""Every test run: a SIGTERM (a stopped CI job, `scripts/run-tests` stopping its runs) is
an interrupt, so fixtures still take their labs and VMs down; a second one during that
teardown is ignored rather than cutting it short. SIGINT is an interrupt again when the
run was started in the background of a script (which starts it ignored): the processes
the tests start then get the default SIGINT, as the tests that send Ctrl-C expect."""

from __future__ import annotations

import signal
from types import FrameType


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: what teardown starts gets the default SIGTERM again."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, _ignore)
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
