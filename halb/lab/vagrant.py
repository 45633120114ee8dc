"""The Vagrant VM lab, pure part: its settings, its layout, the files it writes.

    check_env(os.environ)                         # HALB_VAGRANT_* checked before vagrant runs
    layout = parse_layout(json_bytes, path)       # what the Vagrantfile says (addresses)
    ssh = parse_ssh_config(text)                  # vagrant_parse: how to log in
    hosts_ini(layout, ssh, lab_dir); halb_yaml(layout, profile)

The VMs' private-network addresses come from the Vagrantfile itself (it writes them to the
file named by HALB_VAGRANT_LAYOUT), SSH from `vagrant ssh-config`. Nothing here runs a
command.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from halb import kinds
from halb.errors import InputError
from halb.kinds import shown
from halb.lab.vagrant_parse import SshEntry, VagrantError

LAYOUT_VERSION = 1
ROLES = ("lb", "master", "node")
# halb's settings for the Vagrantfile; each is read there, and checked here first.
ENV_VARS = (
    "HALB_VAGRANT_BOX",
    "HALB_VAGRANT_PROVIDER",
    "HALB_VAGRANT_MEMORY",
    "HALB_VAGRANT_CPUS",
    "HALB_VAGRANT_NET",
    "HALB_VAGRANT_LBS",
    "HALB_VAGRANT_MASTERS",
    "HALB_VAGRANT_NODES",
    "HALB_VAGRANT_LIBVIRT_DRIVER",
    "HALB_VAGRANT_EMULATOR",
    "HALB_VAGRANT_CONSOLE_DIR",
    "HALB_VAGRANT_BOOT_TIMEOUT",
    "HALB_VAGRANT_APT_REPO",
    "HALB_VAGRANT_FAKEAPI",
)
# Least and most of each role's VMs (the Vagrantfile's limits).
COUNT_LIMITS = {"HALB_VAGRANT_LBS": 1, "HALB_VAGRANT_MASTERS": 1, "HALB_VAGRANT_NODES": 0}
MAX_PER_ROLE = 9
LAYOUT_ENV = "HALB_VAGRANT_LAYOUT"
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)
_BOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:@+-]{0,254}", re.ASCII)
_NET = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})", re.ASCII)
_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", re.ASCII)
_PATH_SETTINGS = ("HALB_VAGRANT_EMULATOR", "HALB_VAGRANT_CONSOLE_DIR", "HALB_VAGRANT_FAKEAPI")


# --- settings ------------------------------------------------------------------------


def check_env(env: Mapping[str, str]) -> dict[str, str]:
    """The HALB_VAGRANT_* settings that are set, checked as the Vagrantfile checks them.

    Checked before `vagrant` runs, so a typo is exit 2 with nothing made.
    """
    got = {k: env[k].strip() for k in ENV_VARS if env.get(k, "").strip()}
    for key, value in got.items():
        problem = _env_problem(key, value)
        if problem:
            raise InputError(f"{key}={shown(value)}: {problem}")
    return got


def _env_problem(key: str, value: str) -> str | None:
    if key == "HALB_VAGRANT_NET":
        m = _NET.fullmatch(value)
        if not m or any(int(o) > 255 for o in m.groups()):
            return "give the first three octets of a /24, e.g. 192.168.56"
    elif key in ("HALB_VAGRANT_MEMORY", "HALB_VAGRANT_CPUS"):
        least = 256 if key.endswith("MEMORY") else 1
        if not value.isascii() or not value.isdigit() or len(value) > 6 or int(value) < least:
            return f"give a whole number of at least {least}"
    elif key == "HALB_VAGRANT_PROVIDER":
        if not _PROVIDER.fullmatch(value):
            return "a Vagrant provider name such as virtualbox or libvirt"
    elif key == "HALB_VAGRANT_BOX" and not _BOX.fullmatch(value):
        return "a box name such as debian/bookworm64"
    elif key in COUNT_LIMITS:
        least = COUNT_LIMITS[key]
        if not value.isascii() or not value.isdigit() or not least <= int(value) <= MAX_PER_ROLE:
            return f"give a whole number from {least} to {MAX_PER_ROLE}"
    elif key == "HALB_VAGRANT_LIBVIRT_DRIVER" and value not in ("kvm", "qemu"):
        return "give kvm or qemu (QEMU's TCG, no KVM)"
    elif key == "HALB_VAGRANT_BOOT_TIMEOUT":
        if not value.isascii() or not value.isdigit() or len(value) > 6 or int(value) < 30:
            return "give a whole number of seconds, at least 30"
    elif key == "HALB_VAGRANT_APT_REPO" and not _URL.fullmatch(value):
        return "give an http:// or https:// URL of a flat Debian repository"
    elif key in _PATH_SETTINGS and (not value.startswith("/") or not value.isprintable()):
        return "give an absolute path"
    return None


# --- the layout the Vagrantfile writes ----------------------------------------------


@dataclass(frozen=True)
class VmHost:
    name: str
    ip: str
    role: str


@dataclass(frozen=True)
class Layout:
    cluster: str
    network: ipaddress.IPv4Network
    interface: str
    vip_internal: str
    vip_external: str
    hosts: tuple[VmHost, ...]
    box: str = ""
    provider: str | None = None

    def by_role(self, role: str) -> list[VmHost]:
        return [h for h in self.hosts if h.role == role]


def parse_layout(data: bytes, source: Path) -> Layout:
    """The lab layout the Vagrantfile wrote; every value checked for its kind."""

    def bad(what: str) -> InputError:
        return InputError(f"{source}: {what} (written by the Vagrantfile; check its HOSTS)")

    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"not a JSON document: {e}") from None
    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    if doc.get("halb_vagrant_layout") != LAYOUT_VERSION:
        raise bad(f"halb_vagrant_layout is {shown(doc.get('halb_vagrant_layout'))}, not 1")
    try:
        network = ipaddress.IPv4Network(_str(doc, "network"), strict=True)
        cluster = kinds.cluster_name(doc.get("cluster"))
        interface = kinds.interface(doc.get("interface"))
        vips = doc.get("vips")
        if not isinstance(vips, dict):
            raise ValueError("vips must be an object with internal and external")
        vip_in = _address_in(vips.get("internal"), network, "vips.internal")
        vip_ex = _address_in(vips.get("external"), network, "vips.external")
        hosts = _hosts(doc.get("hosts"), network)
    except ValueError as e:
        raise bad(str(e)) from None
    taken = {h.ip: h.name for h in hosts}
    for role, vip in (("internal", vip_in), ("external", vip_ex)):
        if vip in taken:
            raise bad(f"VIP {role} {vip} is the address of {taken[vip]}")
    for role in ("lb", "master"):
        if not any(h.role == role for h in hosts):
            raise bad(f"no host has the role {role}")
    box = doc.get("box")
    provider = doc.get("provider")
    return Layout(
        cluster=cluster,
        network=network,
        interface=interface,
        vip_internal=vip_in,
        vip_external=vip_ex,
        hosts=hosts,
        box=box if isinstance(box, str) else "",
        provider=provider if isinstance(provider, str) and provider else None,
    )


def _str(doc: Mapping[str, Any], key: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str):
        raise ValueError(f"{key} must be a string, not {shown(v)}")
    return v


def _address_in(value: object, network: ipaddress.IPv4Network, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an address, not {shown(value)}")
    try:
        a = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{what} {shown(value)} is not an IPv4 address") from None
    if a not in network or a in (network.network_address, network.broadcast_address):
        raise ValueError(f"{what} {a} is not a host address of {network}")
    return str(a)


def _hosts(value: object, network: ipaddress.IPv4Network) -> tuple[VmHost, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("hosts must be a non-empty list")
    if len(value) > 250:
        raise ValueError(f"{len(value)} hosts; the lab takes at most 250")
    out: list[VmHost] = []
    names: set[str] = set()
    ips: set[str] = set()
    for i, h in enumerate(value):
        if not isinstance(h, dict):
            raise ValueError(f"hosts[{i}] must be an object")
        name = kinds.host_name(h.get("name"))
        ip = _address_in(h.get("ip"), network, f"hosts[{i}] ({name}) ip")
        role = h.get("role")
        if role not in ROLES:
            raise ValueError(f"host {name}: role {shown(role)} is not one of {', '.join(ROLES)}")
        if name in names:
            raise ValueError(f"host {name} is listed twice")
        if ip in ips:
            raise ValueError(f"host {name}: address {ip} is taken by another host")
        names.add(name)
        ips.add(ip)
        out.append(VmHost(name, ip, str(role)))
    return tuple(out)


# --- the files the lab writes ----------------------------------------------------------


def hosts_ini(layout: Layout, ssh: Mapping[str, SshEntry], lab_dir: Path) -> str:
    """The installer's inventory in the KubeSphere 2.1 shape, plus an [lb] group: SSH
    through the port Vagrant forwards, with Vagrant's key; `ip` the private address."""
    missing = [h.name for h in layout.hosts if h.name not in ssh]
    if missing:
        raise VagrantError(
            f"`vagrant ssh-config` has no entry for {', '.join(missing)}: "
            "the VM did not come up (see `halb lab status --provider vagrant`)"
        )
    d = lab_dir.resolve()
    lines = [
        "# The Vagrant VM lab (written by `halb lab up --provider vagrant`): SSH through the",
        "# port Vagrant forwards, with its key; ip= is the VM's private-network address.",
        "[all]",
    ]
    per_host_args = len({ssh[h.name].options for h in layout.hosts}) > 1
    for h in layout.hosts:
        e = ssh[h.name]
        line = (
            f"{h.name} ansible_host={e.hostname} ansible_port={e.port} ansible_user={e.user}"
            f" ansible_ssh_private_key_file={_ini_value(e.identity_file)} ip={h.ip}"
        )
        if per_host_args:
            line += f" ansible_ssh_common_args={_ini_value(_ssh_args(d, e.options))}"
        lines.append(line)

    def group(title: str, role: str) -> list[str]:
        return ["", f"[{title}]", *(h.name for h in layout.by_role(role))]

    lines += group("lb", "lb")
    lines += group("kube-master", "master")
    lines += group("kube-node", "node")
    lines += group("etcd", "master")
    lines += ["", "[k8s-cluster:children]", "kube-node", "kube-master", "", "[all:vars]"]
    if not per_host_args:
        options = ssh[layout.hosts[0].name].options
        lines.append(f"ansible_ssh_common_args={_ini_value(_ssh_args(d, options))}")
    lines.append("halb_service_manager=systemd")
    return "\n".join(lines) + "\n"


def _ssh_args(lab_dir: Path, options: tuple[tuple[str, str], ...]) -> str:
    # Each VM's host key is pinned on first use in the lab's own known_hosts, which
    # `halb lab up` starts empty and `halb lab down` removes (a new VM, a new key).
    args = [
        "-o",
        f"UserKnownHostsFile={lab_dir / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=accept-new",
    ]
    for k, v in options:
        args += ["-o", f"{k}={v}"]
    return shlex.join(args)


def _ini_value(value: str) -> str:
    """A value as one token of an INI inventory line (Ansible splits lines like a shell)."""
    return shlex.quote(value)


def halb_yaml(layout: Layout, profile: str = "default") -> str:
    """The cluster spec, in the shape the netns lab writes; `profile` is `emulated` for VMs
    under QEMU's TCG (docs/profiles.md)."""
    iface = layout.interface
    return (
        "# halb cluster spec for the Vagrant VM lab (written by `halb lab up --provider vagrant`)\n"
        f"cluster: {layout.cluster}\n"
        "inventory: hosts.ini\n"
        "vips:\n"
        f"  internal: {{address: {layout.vip_internal}, interface: {iface}}}\n"
        f"  external: {{address: {layout.vip_external}, interface: {iface}}}\n"
        "frontends:\n"
        "  apiserver: {vip: internal, port: 6443, backends: kube-master, backend_port: 6443}\n"
        "  console: {vip: external, port: 30880, backends: k8s-cluster, backend_port: 30880}\n"
        f"vrrp: {{profile: {profile}}}\n"
        "installer: {kind: kubesphere, config: conf/common.yaml, domain: lb.kubesphere.local}\n"
    )


def next_steps(layout: Layout, lab_dir: Path, isolated: bool = False) -> str:
    d = shlex.quote(str(lab_dir))
    if isolated:
        run = f"halb lab exec --provider vagrant --dir {d} -- halb"
        return (
            f"lab vagrant is up: {layout.network}, VIPs {layout.vip_internal} (internal) and "
            f"{layout.vip_external} (external), not yet held by anyone\n"
            "next (the VMs' networks exist only in the lab's namespace):\n"
            f"  {run} up -c {d}/halb.yaml\n"
            f"  halb lab status --provider vagrant --dir {d}\n"
            f"  halb lab down --provider vagrant --dir {d}\n"
        )
    return (
        f"lab vagrant is up: {layout.network}, VIPs {layout.vip_internal} (internal) and "
        f"{layout.vip_external} (external), not yet held by anyone\n"
        "next (from this machine: SSH goes through Vagrant's forwarded ports):\n"
        f"  halb deploy -c {d}/halb.yaml\n"
        f"  halb up -c {d}/halb.yaml\n"
        f"  halb lab status --provider vagrant --dir {d}\n"
        f"  halb lab down --provider vagrant --dir {d}\n"
    )
