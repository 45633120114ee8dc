"""Transports: one small interface (run, put, get, close) over local, ssh and netns."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from halb.errors import InputError
from halb.inventory import Host
from halb.transport.base import Result, Transport, batch, chain, quote, sh, split_batch
from halb.transport.local import LocalTransport
from halb.transport.netns import NetnsTransport
from halb.transport.ssh import SshTransport

__all__ = [
    "BACKENDS",
    "Result",
    "Transport",
    "TransportFactory",
    "batch",
    "chain",
    "for_host",
    "quote",
    "sh",
    "split_batch",
]

TransportFactory = Callable[[Host], Transport]


def _ssh(host: Host) -> Transport:
    try:
        common = shlex.split(host.ssh_common_args or "")
    except ValueError as e:
        raise InputError(f"host {host.name}: ansible_ssh_common_args: {e}") from None
    return SshTransport(
        host.name,
        host.ssh_address,
        port=host.port if "ansible_port" in host.vars or "ansible_ssh_port" in host.vars else None,
        user=host.user,
        password=host.password,
        become_password=host.become_password,
        private_key_file=host.private_key_file,
        common_args=common,
    )


def _local(host: Host) -> Transport:
    return LocalTransport(host.name)


def _netns(host: Host) -> Transport:
    ns = host.vars.get("halb_netns")
    if not ns:
        raise InputError(f"host {host.name}: ansible_connection=netns needs host var halb_netns")
    mnt = host.vars.get("halb_mountns")
    return NetnsTransport(host.name, str(ns), str(mnt) if mnt else None)


BACKENDS: dict[str, Callable[[Host], Transport]] = {
    "ssh": _ssh,
    "smart": _ssh,  # Ansible's default alias for ssh
    "local": _local,
    "netns": _netns,
}


def for_host(host: Host) -> Transport:
    """The transport for a host, chosen by its ansible_connection."""
    make = BACKENDS.get(host.connection)
    if make is None:
        valid = ", ".join(sorted(BACKENDS))
        raise InputError(
            f"host {host.name}: unknown ansible_connection {host.connection!r} (valid: {valid})"
        )
    return make(host)
