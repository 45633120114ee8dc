"""Bringing a lab up and down, and reporting on it."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import halb
from halb.errors import InputError
from halb.lab import isolation, netns, sdhost, writer
from halb.lab.discover import existing_labs, lab_octet_in_use
from halb.lab.hostfiles import (
    check_sudo_support,
    make_host_namespaces,
    prepare_host_files,
    write_file,
)
from halb.lab.model import (
    COMMON_YAML,
    CONTROL_DIR,
    INVENTORY_FILE,
    KEY_FILE,
    KNOWN_HOSTS_FILE,
    MARKER,
    SPEC_FILE,
    STATE_DIR,
    STATE_FILE,
    Lab,
    Progress,
)
from halb.lab.netns import require_root
from halb.lab.sdroot import DEBS_DIR
from halb.lab.sdroot import standin_units as standin_unit_texts
from halb.lab.standin import lay_lab_installer
from halb.lab.teardown import down
from halb.lab.topology import (
    BRIDGE,
    HOST_IFACE,
    Init,
    LabHost,
    LabPlan,
    LabRole,
    netns_name,
    octet_in,
    plan,
)

READY_TIMEOUT = 15.0
APISERVER_PORT = 6443
CONSOLE_PORT = 30880


def _quiet(_: str) -> None:
    pass


def check_free(p: LabPlan, lab_dir: Path) -> None:
    labs = existing_labs()
    if p.name in labs:
        raise InputError(
            f"lab {p.name} already exists (namespaces {netns_name(p.name, '*')}); "
            f"run `halb lab down --name {p.name}` first"
        )
    for other in labs:
        if lab_octet_in_use(other) == p.octet:
            raise InputError(
                f"lab {p.name} would use {p.subnet}, already used by lab {other}; "
                "choose another --name"
            )
    clash = [a for a in netns.root_addresses() if octet_in(a) == p.octet]
    if clash:
        raise InputError(
            f"lab {p.name} would use {p.subnet}, but this machine already has {clash[0]} "
            "in it; choose another --name"
        )
    if p.ipv6_subnet is not None:
        net6 = ipaddress.IPv6Network(p.ipv6_subnet)
        clash6 = [n for n in netns.root_networks(6) if _overlaps6(n, net6)]
        if clash6:
            raise InputError(
                f"lab {p.name} would use {p.ipv6_subnet}, but this machine already has "
                f"{clash6[0]} in it; choose another --name"
            )
    if (lab_dir / STATE_FILE).exists() or (lab_dir / STATE_DIR).exists():
        raise InputError(
            f"{lab_dir} already holds a lab; run `halb lab down --dir {lab_dir}` first"
        )


def _overlaps6(text: str, net: ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.IPv6Network(text, strict=False).overlaps(net)
    except ValueError:
        return False


# --- building -----------------------------------------------------------------------


def make_network(p: LabPlan) -> None:
    sw = p.switch_netns
    netns.ip_batch([f"netns add {sw}", *(f"netns add {h.netns}" for h in p.hosts)])
    cmds = [
        f"link add {BRIDGE} type bridge",
        f"link set {BRIDGE} up",
        "link set lo up",
    ]
    for h in p.hosts:
        # The switch end is named after the host; nothing is created in the root namespace.
        cmds += [
            f"link add {h.name} type veth peer name {HOST_IFACE} netns {h.netns}",
            f"link set {h.name} master {BRIDGE}",
            f"link set {h.name} up",
        ]
    netns.ip_batch(cmds, sw)

    def host_net(h: LabHost) -> None:
        netns.ip_batch(
            [
                "link set lo up",
                f"addr add {h.address}/{p.prefix_len} dev {HOST_IFACE}"
                + (" nodad" if p.ip_family == "6" else ""),
                # nodad: usable at once; the segment is the lab's own, every address unique
                *([f"addr add {h.address6}/64 dev {HOST_IFACE} nodad"] if h.address6 else []),
                f"link set {HOST_IFACE} up",
            ],
            h.netns,
        )

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(host_net, p.hosts))


def bind_address(p: LabPlan, h: LabHost) -> str:
    """Where the stand-ins listen: the host's address, or every address on a co-located lab,
    as a real apiserver (0.0.0.0:6443) and a NodePort (every local address) bind."""
    if p.colocated:
        return "::" if p.ip_family == "6" else "0.0.0.0"
    return h.address


def start_daemons(lab: Lab, h: LabHost) -> None:
    lab.spawn(h.name, ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"], "sshd.log")
    fake = [sys.executable, "-m", "halb.lab.fakeapi", "--name", h.name]
    if h.role is LabRole.MASTER:
        tls = f"/{CONTROL_DIR}/tls"
        fake += [
            "--apiserver", f"{bind_address(lab.plan, h)}:{APISERVER_PORT}",
            "--cert", f"{tls}/apiserver.crt", "--key", f"{tls}/apiserver.key",
        ]  # fmt: skip
    if h.role in (LabRole.MASTER, LabRole.NODE):
        # the console is a NodePort: every k8s-cluster host answers on it
        fake += ["--console", f"{bind_address(lab.plan, h)}:{CONSOLE_PORT}"]
    else:
        return
    # The package may not be installed for the interpreter: point it at this source tree.
    src = str(Path(halb.__file__).resolve().parent.parent)
    log = lab.host_dir(h.name) / "lab-logs" / "fakeapi.log"
    netns.spawn_daemon(lab.enter_argv(h.name), fake, log, env={"PYTHONPATH": src})


def standin_units(p: LabPlan, h: LabHost) -> dict[str, str]:
    """The units of a systemd master or node: what start_daemons runs on the others."""
    return standin_unit_texts(
        h.name,
        bind_address(p, h),
        apiserver=APISERVER_PORT if h.role is LabRole.MASTER else None,
        console=CONSOLE_PORT if h.role in (LabRole.MASTER, LabRole.NODE) else None,
    )


def expected_ports(p: LabPlan, h: LabHost) -> set[tuple[str, int]]:
    ports = {(h.address, 22)}
    bind = bind_address(p, h)
    if h.role is LabRole.MASTER:
        ports.add((bind, APISERVER_PORT))
    if h.role is LabRole.NODE:
        ports.add((bind, CONSOLE_PORT))
    return ports


def wait_ready(lab: Lab, hosts: list[LabHost]) -> None:
    pending = {h.name: expected_ports(lab.plan, h) for h in hosts}
    deadline = time.monotonic() + READY_TIMEOUT
    while pending:
        for name in list(pending):
            missing = pending[name] - netns.listening_tcp(lab.plan.host(name).netns)
            if missing:
                pending[name] = missing
            else:
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            name, missing = next(iter(pending.items()))
            logs = lab.host_dir(name) / "lab-logs"
            raise netns.LabError(
                f"lab {lab.name}: {name} does not listen on "
                f"{', '.join(f'{a}:{p}' for a, p in sorted(missing))} after "
                f"{READY_TIMEOUT:.0f} s (logs in {logs})"
            )
        time.sleep(0.05)


def check_isolation(lab: Lab, hosts: list[LabHost]) -> None:
    """Every host sees its own private files (before a daemon of a plain host starts)."""
    isolation.require_own(lab.name, ((h.name, h.netns) for h in hosts))


def hash_password(password: str) -> str:
    # The password goes through stdin, never argv.
    return netns.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n").stdout.strip()


def up(
    name: str = "halb",
    dir: Path | str = Path("lab"),
    lbs: int = 2,
    masters: int = 3,
    nodes: int = 3,
    *,
    octet: int | None = None,
    password_hosts: frozenset[str] | None = None,
    sudo_hosts: frozenset[str] | None = None,
    init: Init = Init.PLAIN,
    ip_family: str = "4",
    progress: Progress = _quiet,
) -> Lab:
    """Build the lab and return it; on any failure remove what was built and re-raise."""
    require_root()
    p = plan(
        name,
        lbs,
        masters,
        nodes,
        octet=octet,
        password_hosts=password_hosts,
        sudo_hosts=sudo_hosts,
        init=init,
        ip_family=ip_family,
    )
    lab_dir = Path(dir).resolve()
    if not netns.ip_netns_available():
        raise InputError("`ip netns` does not work here; the lab needs network namespaces")
    check_free(p, lab_dir)
    if any(h.sudo_user for h in p.hosts):
        check_sudo_support()
    if p.init is Init.SYSTEMD:
        sdhost.check_support()
    lab = Lab(
        plan=p,
        dir=lab_dir,
        password=secrets.token_urlsafe(15),
        sudo_password=secrets.token_urlsafe(15),
    )
    try:
        _build(lab, progress)
    except BaseException:
        progress("failed; removing what was built")
        down(name, lab_dir)
        raise
    return lab


def _build(lab: Lab, progress: Progress) -> None:
    p = lab.plan
    lab.dir.mkdir(parents=True, exist_ok=True)
    lab.state_dir.mkdir(mode=0o700)
    (lab.state_dir / MARKER).write_text(p.name + "\n")
    progress(f"network: switch {p.switch_netns}, {len(p.hosts)} hosts in {p.subnet}")
    make_network(p)
    for target in ("/var/lib/halb", "/var/log/halb"):
        # Mount points for the per-host copies; empty, the machine's files stay untouched.
        Path(target).mkdir(parents=True, exist_ok=True)
    netns.private_bind(lab.state_dir)
    base = None
    if p.init is Init.SYSTEMD:
        progress(f"package source in {DEBS_DIR} and base layer (fresh LB servers)")
        with sdhost.cache_lock():
            base = sdhost.build_base(lab, sdhost.fresh_packages())

    progress("keys and per-host files")
    netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"halb-lab-{p.name}",
               "-f", str(lab.key)])  # fmt: skip
    lab.key.chmod(0o600)
    client_pub = (lab.dir / (KEY_FILE + ".pub")).read_text()
    password_hash = hash_password(lab.password)
    sudo = (
        writer.free_id(Path("/etc/passwd").read_text(), Path("/etc/group").read_text()),
        hash_password(lab.sudo_password),
    )
    hosts_text = Path("/etc/hosts").read_text() if Path("/etc/hosts").is_file() else ""
    hosts_text += f"\n# lab {p.name}\n" + "".join(
        f"{h.address} {h.name}\n" for h in p.inventory_hosts
    )
    machines = list(p.inventory_hosts)
    with ThreadPoolExecutor(8) as ex:
        pubs = list(
            ex.map(
                lambda h: prepare_host_files(lab, h, client_pub, password_hash, hosts_text, sudo),
                machines,
            )
        )
        host_keys = {h.name: pub for h, pub in zip(machines, pubs, strict=True)}
        plain = [h for h in machines if h.init is Init.PLAIN]
        booted = [h for h in machines if h.init is Init.SYSTEMD]
        if plain:
            progress("mount and UTS namespaces")
            list(ex.map(lambda h: make_host_namespaces(lab, h), plain))
            check_isolation(lab, plain)
            progress("daemons: sshd everywhere, apiserver on masters, console on masters and nodes")
            list(ex.map(lambda h: start_daemons(lab, h), plain))
        if booted:
            assert base is not None
            progress(f"booting systemd on {', '.join(h.name for h in booted)}")
            masks = sdhost.masks()
            for h in booted:
                sdhost.boot(lab, h, base, sdhost.prepare(lab, h, masks, standin_units(p, h)))
            list(ex.map(lambda h: sdhost.wait_booted(lab, h), booted))
            check_isolation(lab, booted)
    wait_ready(lab, machines)
    lab.pids = {h.name: netns.netns_pids(h.netns) for h in p.hosts}

    progress(f"files: {INVENTORY_FILE}, {SPEC_FILE}, {KNOWN_HOSTS_FILE}, {STATE_FILE}")
    write_file(lab.known_hosts, writer.known_hosts(p, host_keys), 0o644)
    write_file(lab.inventory, writer.hosts_ini(p, lab.dir, lab.password, lab.sudo_password), 0o600)
    write_file(lab.spec, writer.halb_yaml(p), 0o644)
    (lab.dir / COMMON_YAML).parent.mkdir(exist_ok=True)
    write_file(lab.dir / COMMON_YAML, writer.COMMON_YAML, 0o644)
    lay_lab_installer(lab.dir)
    write_file(lab.dir / STATE_FILE, json.dumps(lab.to_json(), indent=2) + "\n", 0o600)


@contextlib.contextmanager
def running(
    name: str, dir: Path | str, lbs: int = 2, masters: int = 3, nodes: int = 3, **kw: Any
) -> Iterator[Lab]:
    """`with running(...) as lab:` — a lab that is always taken down afterwards."""
    lab = up(name, dir, lbs, masters, nodes, **kw)
    try:
        yield lab
    finally:
        down(name, dir)
