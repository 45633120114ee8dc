"""Find labs that exist now (from namespace names and /proc), report on them, and say
how to enter their hosts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from halb.errors import InputError
from halb.lab import isolation, netns
from halb.lab.model import STATE_FILE, load
from halb.lab.topology import (
    HOST_IFACE,
    SWITCH,
    TASKBOX,
    check_name,
    lab_of_netns,
    netns_name,
    octet_in,
    octet_of,
    plan,
    subnet_of,
    vips_of,
)
from halb.transport.netns import nsenter_argv


def existing_labs() -> dict[str, set[str]]:
    """Lab name -> host names, from the network namespaces that exist now."""
    labs: dict[str, set[str]] = {}
    for ns in netns.list_netns():
        parsed = lab_of_netns(ns)
        if parsed:
            labs.setdefault(parsed[0], set()).add(parsed[1])
    # A lab has a switch or a taskbox; other halb-*-* namespaces belong to someone else.
    return {n: hs for n, hs in labs.items() if SWITCH in hs or TASKBOX in hs}


def lab_octet_in_use(name: str) -> int:
    """The range a running lab really uses (its taskbox address), else the one its name gives."""
    for addr, _ in netns.addresses_in(netns_name(name, TASKBOX), HOST_IFACE):
        octet = octet_in(addr)
        if octet is not None:
            return octet
    return octet_of(name)


def _daemon_names(pid: int) -> list[str]:
    argv = netns.cmdline(pid)
    if not argv:
        return []
    prog = os.path.basename(argv[0])
    if "halb.lab.fakeapi" in argv or any(a.endswith("/fakeapi.py") for a in argv[1:2]):
        return [n for flag, n in (("--apiserver", "apiserver"), ("--console", "console"))
                if flag in argv]  # fmt: skip
    for known in ("sshd", "haproxy", "keepalived"):
        if prog.startswith(known):
            return [known]
    return [prog]


def _host_address(name: str, host: str, octet: int) -> str | None:
    try:
        return plan(name, 9, 9, 99, octet=octet, password_hosts=frozenset()).host(host).address
    except InputError:
        return None


def _host_order(h: str) -> tuple[int, int, str]:
    stem = h.rstrip("0123456789")
    order = {TASKBOX: 0, "lb": 1, "master": 2, "node": 3, SWITCH: 4}
    return (order.get(stem, 5), int(h[len(stem) :] or 0), h)


def status(name: str | None = None) -> list[dict[str, Any]]:
    """Every lab (or one): hosts, addresses, daemons, who holds which extra address, and
    which of its private files each host no longer sees as its own (`not_own_files`)."""
    labs = existing_labs()
    if name is not None:
        check_name(name)
        labs = {name: labs[name]} if name in labs else {}
    report = []
    for lab_name in sorted(labs):
        octet = lab_octet_in_use(lab_name)
        vips = {address: role for role, address in vips_of(octet).items()}
        holders: dict[str, list[str]] = {v: [] for v in vips}
        hosts: list[dict[str, Any]] = []
        for host in sorted(labs[lab_name], key=_host_order):
            ns = netns_name(lab_name, host)
            if host == SWITCH:
                hosts.append({"host": host, "netns": ns, "address": None, "daemons": [],
                              "extra_addresses": []})  # fmt: skip
                continue
            own = _host_address(lab_name, host, octet)
            addrs = [a for a, _ in netns.addresses_in(ns, HOST_IFACE)]
            pids = netns.netns_pids(ns)
            daemons = sorted({d for pid in pids for d in _daemon_names(pid)} - {"unshare"})
            init = "systemd" if netns.init_pid(ns) is not None else "plain"
            extra = [a for a in addrs if a != own]
            for a in extra:
                holders.setdefault(a, []).append(host)
            # the taskbox is the machine's own view: it has no private files
            foreign = [] if host == TASKBOX else isolation.foreign_files(ns, host)
            hosts.append({"host": host, "netns": ns, "address": own if own in addrs else None,
                          "init": init, "daemons": daemons, "extra_addresses": extra,
                          "not_own_files": foreign})  # fmt: skip
        report.append(
            {
                "name": lab_name,
                "subnet": subnet_of(octet),
                "hosts": hosts,
                "isolated": not any(h.get("not_own_files") for h in hosts),
                "vips": [
                    {"address": a, "role": vips.get(a, "other"), "holders": h}
                    for a, h in holders.items()
                ],
            }
        )
    return report


def resolve_name(name: str | None, lab_dir: Path | None) -> str:
    """--name if given, else the lab in `lab_dir`, else the only lab running, else "halb"."""
    if name is not None:
        return check_name(name)
    if lab_dir is not None and (lab_dir / STATE_FILE).is_file():
        return load(lab_dir).name
    labs = existing_labs()
    if len(labs) == 1:
        return next(iter(labs))
    return "halb"


def enter_argv(name: str, host: str, lab_dir: Path | None) -> list[str]:
    """`nsenter ... --` for `host` of lab `name`, from lab.json or, without it, from /proc."""
    if lab_dir is not None and (lab_dir / STATE_FILE).is_file():
        lab = load(lab_dir)
        if lab.name == name:
            return lab.enter_argv(host)
    ns = netns_name(name, host)
    if ns not in netns.list_netns():
        hosts = ", ".join(sorted(existing_labs().get(name, set()) - {SWITCH})) or "none"
        raise InputError(f"lab {name}: no host {host!r} (hosts: {hosts})")
    if host == TASKBOX:
        return nsenter_argv(ns)
    init = netns.init_pid(ns)
    if init is not None:
        return netns.init_enter_argv(init)
    mine = netns.ns_inode(os.getpid(), "mnt")
    for pid in netns.netns_pids(ns):
        mnt = netns.ns_inode(pid, "mnt")
        if mnt is not None and mnt != mine:
            return nsenter_argv(ns, f"/proc/{pid}/ns/mnt", f"/proc/{pid}/ns/uts")
    raise netns.LabError(
        f"lab {name}: cannot find the mount namespace of {host} "
        "(no lab.json in --dir and no process left in the host)"
    )


def pick_name(prefix: str = "t") -> str:
    """A lab name not in use whose range no running lab uses (for tests and scripts)."""
    labs = existing_labs()
    used = {lab_octet_in_use(n) for n in labs}
    base = f"{prefix}{os.getpid()}"
    for i in range(200):
        name = f"{base}x{i}"[-12:] if i else base[-12:]
        if name not in labs and octet_of(check_name(name)) not in used:
            return name
    raise netns.LabError("no free lab name/range found; take some labs down")
