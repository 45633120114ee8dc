"""Bringing a lab up and down, and reporting on it."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import halb
from halb.errors import InputError
from halb.lab import netns, writer
from halb.lab.model import (
    CONTROL_DIR,
    INVENTORY_FILE,
    KEY_FILE,
    KNOWN_HOSTS_FILE,
    SPEC_FILE,
    STATE_DIR,
    STATE_FILE,
    Lab,
    load,
)
from halb.lab.topology import (
    BRIDGE,
    HOST_IFACE,
    SWITCH,
    TASKBOX,
    HostPlan,
    LabPlan,
    Role,
    check_name,
    lab_of_netns,
    octet_of,
    plan,
)

Progress = Callable[[str], None]
READY_TIMEOUT = 15.0
APISERVER_PORT = 6443
CONSOLE_PORT = 30880
COMMON_YAML = Path("conf") / "common.yaml"
# Files `up` writes into the lab dir (and `down` removes).
LAB_FILES = (
    STATE_FILE,
    INVENTORY_FILE,
    SPEC_FILE,
    KEY_FILE,
    KEY_FILE + ".pub",
    KNOWN_HOSTS_FILE,
    str(COMMON_YAML),
)
MARKER = ".halb-lab"
# Per-host private copies, bound over these paths inside the host's mount namespace.
HOST_BINDS = (
    ("etc-haproxy", "/etc/haproxy"),
    ("etc-keepalived", "/etc/keepalived"),
    ("etc-ssh", "/etc/ssh"),
    ("etc-sysctl.d", "/etc/sysctl.d"),
    ("var-lib-halb", "/var/lib/halb"),
    ("var-log-halb", "/var/log/halb"),
    ("shadow", "/etc/shadow"),
    ("hostname", "/etc/hostname"),
    ("hosts", "/etc/hosts"),
    ("run", "/run"),
)
# Sudo hosts also get their own user databases, sudoers drop-ins and /home.
SUDO_BINDS = (
    ("passwd", "/etc/passwd"),
    ("group", "/etc/group"),
    ("etc-sudoers.d", "/etc/sudoers.d"),
    ("home", "/home"),
)
SUDOERS = Path("/etc/sudoers")
# Runs inside the new mount+UTS namespace (already in the host's network namespace).
HOST_SETUP = """
hostname "$1"
d="$2"
shift 2
# Drop the copies of other namespaces' files (every /run/netns entry, other labs' files):
# they would keep those namespaces alive as long as this host exists.
grep ' - nsfs ' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null || true
done
while [ $# -gt 1 ]; do mount --bind "$d/$1" "$2"; shift 2; done
umount -l /sys
mount -t sysfs sysfs /sys
"""


def _quiet(_: str) -> None:
    pass


def require_root() -> None:
    if os.geteuid() != 0:
        raise InputError("halb lab needs root (network namespaces, mounts); run it with sudo")


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
    for addr, _ in netns.addresses_in(f"halb-{name}-{TASKBOX}", "eth0"):
        parts = addr.split(".")
        if addr.startswith("10.250.") and len(parts) == 4:
            return int(parts[2])
    return octet_of(name)


def check_free(p: LabPlan, lab_dir: Path) -> None:
    labs = existing_labs()
    if p.name in labs:
        raise InputError(
            f"lab {p.name} already exists (namespaces halb-{p.name}-*); "
            f"run `halb lab down --name {p.name}` first"
        )
    for other in labs:
        if lab_octet_in_use(other) == p.octet:
            raise InputError(
                f"lab {p.name} would use {p.subnet}, already used by lab {other}; "
                "choose another --name"
            )
    prefix = f"10.250.{p.octet}."
    clash = [a for a in netns.root_addresses() if a.startswith(prefix)]
    if clash:
        raise InputError(
            f"lab {p.name} would use {p.subnet}, but this machine already has {clash[0]} "
            "in it; choose another --name"
        )
    if (lab_dir / STATE_FILE).exists() or (lab_dir / STATE_DIR).exists():
        raise InputError(
            f"{lab_dir} already holds a lab; run `halb lab down --dir {lab_dir}` first"
        )


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

    def host_net(h: HostPlan) -> None:
        netns.ip_batch(
            [
                "link set lo up",
                f"addr add {h.address}/{p.prefix_len} dev {HOST_IFACE}",
                f"link set {HOST_IFACE} up",
            ],
            h.netns,
        )

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(host_net, p.hosts))


def _copy_dir(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    dst.mkdir(parents=True, exist_ok=True)
    dst.chmod(0o755)


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(mode)


def check_sudo_support() -> None:
    """Sudo hosts need sudo, reading drop-ins from /etc/sudoers.d (Debian's default)."""
    if not shutil.which("sudo"):
        raise netns.LabError("the lab's sudo hosts need sudo: apt-get install sudo")
    try:
        text = SUDOERS.read_text()
    except OSError as e:
        raise netns.LabError(f"{SUDOERS}: {e.strerror}") from None
    lines = {ln.strip() for ln in text.splitlines()}
    if not {"@includedir /etc/sudoers.d", "#includedir /etc/sudoers.d"} & lines:
        raise netns.LabError(f"{SUDOERS} does not include /etc/sudoers.d; the sudo hosts need it")


def prepare_sudo_user(d: Path, h: HostPlan, uid: int, password_hash: str) -> None:
    """Private passwd, group, shadow entry, sudoers.d and home for the host's sudo user."""
    user = h.sudo_user
    assert user is not None
    _write(
        d / "passwd",
        writer.passwd_with_user(Path("/etc/passwd").read_text(), user, uid, f"/home/{user}"),
        0o644,
    )
    _write(d / "group", writer.group_with_user(Path("/etc/group").read_text(), user, uid), 0o644)
    shadow = (d / "shadow").read_text()
    (d / "shadow").write_text(writer.shadow_with_user(shadow, user, password_hash))
    # sudo ignores drop-ins not owned by root or writable by others: root, 0440.
    _copy_dir(Path("/etc/sudoers.d"), d / "etc-sudoers.d")
    _write(d / "etc-sudoers.d" / user, writer.sudoers_drop_in(h), 0o440)
    home = d / "home" / user
    home.mkdir(parents=True)
    (d / "home").chmod(0o755)
    os.chown(home, uid, uid)
    home.chmod(0o700)


def prepare_host_files(
    lab: Lab,
    h: HostPlan,
    client_pub: str,
    password_hash: str,
    hosts_text: str,
    sudo: tuple[int, str],
) -> str:
    """Fill the host's private /etc and /run copies; returns its public host key.

    `sudo` is (uid, password hash) of the sudo user, for sudo hosts.
    """
    d = lab.host_dir(h.name)
    d.mkdir(parents=True)
    d.chmod(0o755)
    _copy_dir(Path("/etc/haproxy"), d / "etc-haproxy")
    _copy_dir(Path("/etc/keepalived"), d / "etc-keepalived")
    _copy_dir(Path("/etc/sysctl.d"), d / "etc-sysctl.d")
    # run/haproxy: the stats socket directory of the stock Debian haproxy.cfg
    for sub in ("var-lib-halb", "var-log-halb", "lab-logs", "run/sshd", "run/haproxy", CONTROL_DIR):
        (d / sub).mkdir(parents=True, exist_ok=True)
        (d / sub).chmod(0o755)
    ssh = d / "etc-ssh"
    ssh.mkdir()
    ssh.chmod(0o755)
    for f in ("moduli", "ssh_config"):
        if Path("/etc/ssh", f).is_file():
            shutil.copy2(Path("/etc/ssh", f), ssh / f)
    _write(ssh / "sshd_config", writer.sshd_config(h), 0o644)
    if not h.password:
        _write(ssh / "authorized_keys.root", client_pub, 0o600)
    key = ssh / "ssh_host_ed25519_key"
    netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(key)])
    shadow = Path("/etc/shadow").read_text()
    root_hash = password_hash if h.password else "*"
    _write(d / "shadow", writer.shadow_with_root_hash(shadow, root_hash), 0o640)
    with contextlib.suppress(KeyError):
        os.chown(d / "shadow", 0, grp.getgrnam("shadow").gr_gid)
    if h.sudo_user:
        prepare_sudo_user(d, h, *sudo)
    _write(d / "hostname", h.name + "\n", 0o644)
    _write(d / "hosts", hosts_text, 0o644)
    if h.role is Role.MASTER:
        tls = d / CONTROL_DIR / "tls"
        tls.mkdir(mode=0o700)
        san = (
            f"subjectAltName=IP:{h.address},IP:{lab.vip_internal},IP:{lab.vip_external},"
            f"DNS:{h.name},DNS:lb.kubesphere.local,DNS:kubernetes,DNS:localhost"
        )
        netns.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                "-subj", f"/CN={h.name}", "-addext", san,
                "-keyout", str(tls / "apiserver.key"), "-out", str(tls / "apiserver.crt"),
            ]
        )  # fmt: skip
    return (ssh / "ssh_host_ed25519_key.pub").read_text()


def make_host_namespaces(lab: Lab, h: HostPlan) -> None:
    (lab.state_dir / "ns").mkdir(exist_ok=True)
    args = [h.name, str(lab.host_dir(h.name))]
    for sub, target in HOST_BINDS + (SUDO_BINDS if h.sudo_user else ()):
        args += [sub, target]
    netns.new_host_namespaces(
        h.netns, lab.mount_file(h.name), lab.uts_file(h.name), HOST_SETUP, args
    )


def start_daemons(lab: Lab, h: HostPlan) -> None:
    lab.spawn(h.name, ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"], "sshd.log")
    fake = [sys.executable, "-m", "halb.lab.fakeapi", "--name", h.name]
    if h.role is Role.MASTER:
        tls = f"/{CONTROL_DIR}/tls"
        fake += [
            "--apiserver", f"{h.address}:{APISERVER_PORT}",
            "--cert", f"{tls}/apiserver.crt", "--key", f"{tls}/apiserver.key",
        ]  # fmt: skip
    if h.role in (Role.MASTER, Role.NODE):
        # the console is a NodePort: every k8s-cluster host answers on it
        fake += ["--console", f"{h.address}:{CONSOLE_PORT}"]
    else:
        return
    # The package may not be installed for the interpreter: point it at this source tree.
    src = str(Path(halb.__file__).resolve().parent.parent)
    log = lab.host_dir(h.name) / "lab-logs" / "fakeapi.log"
    netns.spawn_daemon(lab.enter_argv(h.name), fake, log, env={"PYTHONPATH": src})


def expected_ports(h: HostPlan) -> set[tuple[str, int]]:
    ports = {(h.address, 22)}
    if h.role is Role.MASTER:
        ports.add((h.address, APISERVER_PORT))
    if h.role is Role.NODE:
        ports.add((h.address, CONSOLE_PORT))
    return ports


def wait_ready(lab: Lab, hosts: list[HostPlan]) -> None:
    pending = {h.name: expected_ports(h) for h in hosts}
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
    )
    lab_dir = Path(dir).resolve()
    if not netns.ip_netns_available():
        raise InputError("`ip netns` does not work here; the lab needs network namespaces")
    check_free(p, lab_dir)
    if any(h.sudo_user for h in p.hosts):
        check_sudo_support()
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
        progress("mount and UTS namespaces")
        list(ex.map(lambda h: make_host_namespaces(lab, h), machines))
        progress("daemons: sshd everywhere, apiserver on masters, console on masters and nodes")
        list(ex.map(lambda h: start_daemons(lab, h), machines))
    wait_ready(lab, machines)
    lab.pids = {h.name: netns.netns_pids(h.netns) for h in p.hosts}

    progress(f"files: {INVENTORY_FILE}, {SPEC_FILE}, {KNOWN_HOSTS_FILE}, {STATE_FILE}")
    _write(lab.known_hosts, writer.known_hosts(p, host_keys), 0o644)
    _write(lab.inventory, writer.hosts_ini(p, lab.dir, lab.password, lab.sudo_password), 0o600)
    _write(lab.spec, writer.halb_yaml(p), 0o644)
    (lab.dir / COMMON_YAML).parent.mkdir(exist_ok=True)
    _write(lab.dir / COMMON_YAML, writer.COMMON_YAML, 0o644)
    _write(lab.dir / STATE_FILE, json.dumps(lab.to_json(), indent=2) + "\n", 0o600)


# --- tearing down -------------------------------------------------------------------


def _lab_mounts(name: str, lab_dir: Path | None) -> list[str]:
    """Mounts made for lab `name`: its namespace files, wherever they are, and its state dir."""
    targets = []
    state = str(lab_dir / STATE_DIR) if lab_dir else None
    for m in netns.mounts():
        t = m.target
        base = os.path.basename(t)
        if base.startswith(f"halb-{name}-") and base.endswith((".mnt", ".uts")):
            targets.append(t)
            # .../state/ns/halb-NAME-HOST.mnt -> .../state (the private bind)
            targets.append(os.path.dirname(os.path.dirname(t)))
        elif state and (t == state or t.startswith(state + "/")):
            targets.append(t)
    mounted = {m.target for m in netns.mounts()}
    return [t for t in targets if t in mounted]


def down(name: str | None = None, dir: Path | str | None = None) -> list[str]:
    """Remove lab `name` (default: the one in `dir`): processes, mounts, namespaces, files.

    Works from namespace names and /proc when lab.json is gone; safe to run twice.
    Returns what it did, one line per step.
    """
    require_root()
    lab_dir = Path(dir).resolve() if dir is not None else None
    if name is None and lab_dir is not None and (lab_dir / STATE_FILE).is_file():
        with contextlib.suppress(Exception):
            name = load(lab_dir).name
    name = check_name(name or "halb")
    done = []
    nss = sorted(ns for ns in netns.list_netns() if (lab_of_netns(ns) or ("",))[0] == name)
    pids = {pid for ns in nss for pid in netns.netns_pids(ns)}
    if pids:
        left = netns.kill_all(pids)
        done.append(f"stopped {len(pids) - len(left)} processes")
        if left:
            done.append(f"could not stop {len(left)} processes: {left}")
    targets = sorted(set(_lab_mounts(name, lab_dir)))
    if targets:
        netns.umount_all(targets)
        done.append(f"unmounted {len(targets)} mounts")
    for ns in sorted(nss, key=lambda n: n.endswith(f"-{SWITCH}")):  # the switch last
        netns.delete_netns(ns)
    if nss:
        done.append(f"deleted {len(nss)} namespaces")
    if lab_dir is not None:
        removed = _remove_files(name, lab_dir)
        if removed:
            done.append(f"removed {removed} files from {lab_dir}")
    return done


def _remove_files(name: str, lab_dir: Path) -> int:
    state = lab_dir / STATE_DIR
    ours = (state / MARKER).is_file() and (state / MARKER).read_text().strip() == name
    if (lab_dir / STATE_FILE).is_file():
        with contextlib.suppress(InputError):
            ours = ours or load(lab_dir).name == name
    if not ours and not (state / MARKER).is_file():
        # No marker of another lab either: a crash before the marker was written.
        ours = not state.exists()
    if not ours:
        return 0
    count = 0
    if state.is_dir() and not netns.is_mountpoint(state):
        shutil.rmtree(state, ignore_errors=True)
        count += 1
    for f in LAB_FILES:
        path = lab_dir / f
        if path.is_file():
            path.unlink()
            count += 1
    with contextlib.suppress(OSError):
        (lab_dir / COMMON_YAML).parent.rmdir()
    with contextlib.suppress(OSError):
        lab_dir.rmdir()  # only when empty
    return count


# --- status -----------------------------------------------------------------------------


def _daemon_names(pid: int) -> list[str]:
    argv = netns.cmdline(pid)
    if not argv:
        return []
    prog = os.path.basename(argv[0])
    if "halb.lab.fakeapi" in argv:
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
    """Every lab (or one): hosts, addresses, daemons, and who holds which extra address."""
    labs = existing_labs()
    if name is not None:
        check_name(name)
        labs = {name: labs[name]} if name in labs else {}
    report = []
    for lab_name in sorted(labs):
        octet = lab_octet_in_use(lab_name)
        vips = {f"10.250.{octet}.253": "internal", f"10.250.{octet}.254": "external"}
        holders: dict[str, list[str]] = {v: [] for v in vips}
        hosts: list[dict[str, Any]] = []
        for host in sorted(labs[lab_name], key=_host_order):
            ns = f"halb-{lab_name}-{host}"
            if host == SWITCH:
                hosts.append({"host": host, "netns": ns, "address": None, "daemons": [],
                              "extra_addresses": []})  # fmt: skip
                continue
            own = _host_address(lab_name, host, octet)
            addrs = [a for a, _ in netns.addresses_in(ns, HOST_IFACE)]
            daemons = sorted({d for pid in netns.netns_pids(ns) for d in _daemon_names(pid)})
            extra = [a for a in addrs if a != own]
            for a in extra:
                holders.setdefault(a, []).append(host)
            hosts.append({"host": host, "netns": ns, "address": own if own in addrs else None,
                          "daemons": daemons, "extra_addresses": extra})  # fmt: skip
        report.append(
            {
                "name": lab_name,
                "subnet": f"10.250.{octet}.0/24",
                "hosts": hosts,
                "vips": [
                    {"address": a, "role": vips.get(a, "other"), "holders": h}
                    for a, h in holders.items()
                ],
            }
        )
    return report


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
    ns = f"halb-{name}-{host}"
    if ns not in netns.list_netns():
        hosts = ", ".join(sorted(existing_labs().get(name, set()) - {SWITCH})) or "none"
        raise InputError(f"lab {name}: no host {host!r} (hosts: {hosts})")
    if host == TASKBOX:
        return netns.enter_argv(ns)
    mine = netns.ns_inode(os.getpid(), "mnt")
    for pid in netns.netns_pids(ns):
        mnt = netns.ns_inode(pid, "mnt")
        if mnt is not None and mnt != mine:
            return netns.enter_argv(ns, Path(f"/proc/{pid}/ns/mnt"), Path(f"/proc/{pid}/ns/uts"))
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
