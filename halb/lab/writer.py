"""Text of the files the lab writes: inventory, cluster spec, sshd config, shadow (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from halb.lab.topology import HOST_IFACE, Init, LabHost, LabPlan
from halb.lab.topology import LabRole as Role


def hosts_ini(plan: LabPlan, lab_dir: Path, password: str, sudo_password: str) -> str:
    """The installer's inventory in the KubeSphere 2.1 shape, plus an [lb] group if the lab
    has LB hosts.

    Sudo hosts log in as their user with `sudo_password`, which sudo then asks for.
    """
    d = lab_dir.resolve()
    lines = ["[all]"]
    for h in plan.inventory_hosts:
        line = f"{h.name} ansible_host={h.address} ip={h.address}"
        if h.address6:
            line += f" ip6={h.address6}"
        if h.password:
            line += f" ansible_ssh_pass={password}"
        if h.sudo_user:
            line += (
                f" ansible_user={h.sudo_user} ansible_ssh_pass={sudo_password}"
                f" ansible_become_pass={sudo_password}"
            )
        if h.init is Init.SYSTEMD:
            line += " halb_service_manager=systemd"
        lines.append(line)

    def group(title: str, role: Role) -> list[str]:
        return ["", f"[{title}]", *(h.name for h in plan.by_role(role))]

    if plan.by_role(Role.LB):  # none: the masters carry the VIP (the guide's six machines)
        lines += group("lb", Role.LB)
    lines += group("kube-master", Role.MASTER)
    lines += group("kube-node", Role.NODE)
    lines += group("etcd", Role.MASTER)
    lines += ["", "[k8s-cluster:children]", "kube-node", "kube-master"]
    lines += [
        "",
        "[all:vars]",
        "ansible_user=root",
        f"ansible_ssh_private_key_file={d / 'id_ed25519'}",
        "ansible_ssh_common_args='-o UserKnownHostsFile="
        f"{d / 'known_hosts'} -o StrictHostKeyChecking=yes'",
        "halb_service_manager=supervisor",
    ]
    return "\n".join(lines) + "\n"


def halb_yaml(plan: LabPlan) -> str:
    six = {"internal": plan.vip_internal6, "external": plan.vip_external6}
    dual = {k: f', address6: "{v}"' if v else "" for k, v in six.items()}
    return (
        f'# halb cluster spec for the lab "{plan.name}" (written by `halb lab up`)\n'
        f"cluster: {plan.cluster}\n"
        "inventory: hosts.ini\n"
        "vips:\n"
        f"  internal: {{address: {plan.vip_internal}{dual['internal']}, interface: {HOST_IFACE}}}\n"
        f"  external: {{address: {plan.vip_external}{dual['external']}, interface: {HOST_IFACE}}}\n"
        "frontends:\n"
        "  apiserver: {vip: internal, port: 6443, backends: kube-master, backend_port: 6443}\n"
        "  console: {vip: external, port: 30880, backends: k8s-cluster, backend_port: 30880}\n"
        "vrrp: {profile: default}\n"
        + (NO_INSTALLER if plan.ip_family == "6" else KUBESPHERE_INSTALLER)
    )


KUBESPHERE_INSTALLER = (
    "installer: {kind: kubesphere, config: conf/common.yaml, domain: lb.kubesphere.local}\n"
)
# KubeSphere 2.1 installs Kubernetes 1.16, which cannot run IPv6-only (write-config refuses
# it): the IPv6-only lab runs no installer
NO_INSTALLER = "installer: {kind: command, command: 'true'}\n"


# The part of a KubeSphere 2.1 conf/common.yaml that the LB settings live in, comments and
# all, so that writing the installer config has a real file to keep intact.
COMMON_YAML = """\
######################################################################
#########                   Kubernetes                    #########
######################################################################
# The supported versions of Kubernetes
kube_version: v1.16.7

# The supported versions of etcd
etcd_version: v3.3.12

# Configure a cron job to backup etcd data, which is running on etcd machines.
# Period of running backup etcd job, the unit is minutes.
# The default value 30 means backup etcd every 30 minutes.
etcd_backup_period: 30

# How many backup replicas to keep.
# The default value5 means to keep latest 5 backups, older ones will be deleted by order.
keep_backup_number: 5

# The location to store etcd backups files on etcd machines.
etcd_backup_dir: "/var/backups/kube_etcd"

# Add other registry.
docker_registry_mirrors:
  - https://docker.mirrors.ustc.edu.cn
  - https://registry.docker-cn.com
  - https://mirror.aliyuncs.com
# Kubernetes network plugin, Calico will be installed by default.
kube_network_plugin: calico

# A valid CIDR range for Kubernetes services,
# 1. should not overlap with node subnet
# 2. should not overlap with Kubernetes pod subnet
kube_service_addresses: 10.233.0.0/18

# A valid CIDR range for Kubernetes pod subnet,
# 1. should not overlap with node subnet
# 2. should not overlap with Kubernetes services subnet
kube_pods_subnet: 10.233.64.0/18

# Kube-proxy proxyMode configuration, either ipvs, or iptables
kube_proxy_mode: ipvs

# Maximum pods allowed to run on every node.
kubelet_max_pods: 110

# Enable nodelocal dns cache
enable_nodelocaldns: true

# Highly Available loadbalancer example config
# apiserver_loadbalancer_domain_name: "lb.kubesphere.local"  # Loadbalancer domain name
# loadbalancer_apiserver:  # uncomment this line when you prepare HA install
#   address: 192.168.0.10  # Loadbalancer apiserver IP address
#   port: 6443   # apiserver port

######################################################################
#########                    KubeSphere                   #########
######################################################################

# Version of KubeSphere
ks_version: v2.1.1

# KubeSphere console port, range 30000-32767,
# but 30180/30280/30380 are reserved for internal service
console_port: 30880 # KubeSphere console nodeport
"""


def sshd_config(host: LabHost) -> str:
    """sshd for one lab host: its own address, keys and pid file; no PAM (no systemd)."""
    return (
        f"# sshd of the lab host {host.name} (written by `halb lab up`)\n"
        f"ListenAddress {host.address}\n"
        "Port 22\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PidFile /run/sshd.pid\n"
        "UsePAM no\n"
        "PermitRootLogin yes\n"
        "PubkeyAuthentication yes\n"
        "AuthorizedKeysFile /etc/ssh/authorized_keys.%u\n"
        f"PasswordAuthentication {'yes' if host.password or host.sudo_user else 'no'}\n"
        "KbdInteractiveAuthentication no\n"
        "PermitEmptyPasswords no\n"
        "UseDNS no\n"
        "MaxStartups 100:30:200\n"
        "MaxSessions 64\n"
        "AcceptEnv LANG LC_*\n"
        "Subsystem sftp internal-sftp\n"
    )


def shadow_with_root_hash(shadow: str, root_hash: str) -> str:
    """The machine's shadow file with root's password field replaced (`*` = no password)."""
    out = []
    seen = False
    for line in shadow.splitlines():
        fields = line.split(":")
        if fields and fields[0] == "root" and len(fields) >= 2:
            fields[1] = root_hash
            line = ":".join(fields)
            seen = True
        out.append(line)
    if not seen:
        out.insert(0, f"root:{root_hash}:19000:0:99999:7:::")
    return "\n".join(out) + "\n"


def free_id(passwd: str, group: str, start: int = 2000) -> int:
    """The first id from `start` that is neither a uid in `passwd` nor a gid in `group`."""
    used = set()
    for text, col in ((passwd, 2), (group, 2)):
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) > col and fields[col].isdigit():
                used.add(int(fields[col]))
    n = start
    while n in used:
        n += 1
    return n


def _add_line(text: str, name: str, line: str) -> str:
    """`text` (an /etc database) without any entry for `name`, plus `line`."""
    kept = [ln for ln in text.splitlines() if ln.split(":", 1)[0] != name]
    return "\n".join([*kept, line]) + "\n"


def passwd_with_user(passwd: str, user: str, uid: int, home: str) -> str:
    return _add_line(passwd, user, f"{user}:x:{uid}:{uid}:halb lab operator:{home}:/bin/sh")


def group_with_user(group: str, user: str, gid: int) -> str:
    return _add_line(group, user, f"{user}:x:{gid}:")


def shadow_with_user(shadow: str, user: str, password_hash: str) -> str:
    return _add_line(shadow, user, f"{user}:{password_hash}:19000:0:99999:7:::")


def sudoers_drop_in(host: LabHost) -> str:
    """sudo for the host's user: anything, after giving its own password (no NOPASSWD)."""
    return (
        f"# lab host {host.name} (written by `halb lab up`)\n{host.sudo_user} ALL=(ALL:ALL) ALL\n"
    )


def known_hosts(plan: LabPlan, host_keys: Mapping[str, str]) -> str:
    """`name,address keytype key` for every host with sshd; `host_keys` maps host -> .pub text."""
    lines = []
    for h in plan.inventory_hosts:
        parts = host_keys[h.name].split()
        lines.append(f"{h.name},{h.address} {parts[0]} {parts[1]}")
    return "\n".join(lines) + "\n"


def next_steps(plan: LabPlan, lab_dir: Path) -> str:
    d = str(lab_dir)
    return (
        f"lab {plan.name} is up: {plan.subnet}, VIPs {plan.vip_internal} (internal) "
        f"and {plan.vip_external} (external), not yet held by anyone\n"
        "next:\n"
        f"  halb lab exec --name {plan.name} -- halb deploy -c {d}/halb.yaml\n"
        f"  halb lab exec --name {plan.name} -- halb up -c {d}/halb.yaml\n"
        f"  halb lab status --name {plan.name}\n"
        f"  halb lab down --name {plan.name} --dir {d}\n"
    )
