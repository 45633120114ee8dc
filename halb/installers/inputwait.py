"""Is the installer blocked reading its terminal? Read from /proc, parsed purely.

A process waiting for input sits in read(2) on a descriptor that is the installer's
terminal: /proc/PID/syscall names the call and its first argument (the descriptor), and
/proc/PID/fd/N where it points. Output silence alone proves nothing (Ansible tasks run
quietly for minutes); silence while reading the terminal is a question nobody answers.
"""

from __future__ import annotations

import os
import platform

import psutil

# read(2) by machine: the first field of /proc/PID/syscall while a process blocks in it.
READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "riscv64": 63, "ppc64le": 3, "s390x": 3}
_TTY_WCHAN = {"n_tty_read", "wait_woken"}  # where a tty read sleeps, when syscall is hidden


def parse_syscall(text: str) -> tuple[int, int] | None:
    """(number, first argument) of a blocked call; None when running or not shown."""
    fields = text.split()
    if len(fields) < 2 or not fields[0].lstrip("-").isdecimal():
        return None
    try:
        return int(fields[0]), int(fields[1], 16)
    except ValueError:
        return None


def reads_terminal(pid: int, tty: str, machine: str | None = None) -> bool:
    """True when `pid` is blocked reading `tty` (its path, or /dev/tty)."""
    proc = f"/proc/{pid}"
    try:
        with open(f"{proc}/syscall") as f:
            call = parse_syscall(f.read())
    except OSError:
        call = None
    targets = {tty, "/dev/tty"}
    if call is not None:
        read_nr = READ_SYSCALL.get(machine or platform.machine())
        if read_nr is None or call[0] != read_nr:
            return False
        try:
            return os.readlink(f"{proc}/fd/{call[1]}") in targets
        except OSError:
            return False
    try:
        with open(f"{proc}/wchan") as f:
            wchan = f.read().strip()
        return wchan in _TTY_WCHAN and os.readlink(f"{proc}/fd/0") in targets
    except OSError:
        return False


def waiting_for_input(root_pid: int, tty: str) -> bool:
    """Is the installer, or any process it started, blocked reading its terminal?"""
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    return any(reads_terminal(p.pid, tty) for p in procs)
