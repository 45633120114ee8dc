"""`halb export ansible`: a playbook and a role that apply exactly what halb renders.

The export holds, per LB host, the rendered files byte for byte (host_files/HOST/...), a
vars file per host listing them, a role that copies them with Ansible's own `validate:`
and backups, handlers that reload (never restart) the way `halb deploy` does for each
service manager, and an ansible.cfg that points at the cluster's own inventory. No secret
is written: the inventory is referenced, not copied, and the VRRP password (if any) stays
a placeholder that the play fills in at run time from where halb reads it.

`build` is pure (cluster + rendered files -> {relative path: file}); `write` puts a build
into a folder in one rename.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from halb import __version__
from halb.errors import InputError
from halb.facts.pids import PIDS_SCRIPT
from halb.files import atomic_write
from halb.kinds import one_line
from halb.paths import (
    CHECK_SCRIPT,
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    NOTIFY_SCRIPT,
    RUNTIME_DIRS,
    SYSCTL_CONF,
    VRRP_NFT,
)
from halb.render import HostFiles, with_vrrp_filter
from halb.services import SUPERVISED, start_argv, validate_argv
from halb.spec import Cluster
from halb.spec.profiles import vip_wait
from halb.vrrp_filter import MAC_RE, interfaces

ROLE = "halb_lb"
HOST_FILES = "host_files"
MARKER = ".halb-export"
PLACEHOLDER = "@@HALB_VRRP_AUTH_PASS@@"
# a peer's MAC in the exported VRRP filter: the play fills it in from that peer's own read
MAC_PLACEHOLDER = "@@HALB_MAC_{host}_{interface}@@"
_ROLE_FILES = ("tasks/main.yml", "handlers/main.yml", "defaults/main.yml")


def mac_placeholders(cluster: Cluster) -> dict[str, dict[str, str]]:
    """{host: {interface: placeholder}}: the VRRP filter rendered with these instead of
    MACs, which only the hosts know (halb deploy learns them; the play reads them)."""
    return {
        h.name: {i: MAC_PLACEHOLDER.format(host=h.name, interface=i) for i in interfaces(cluster)}
        for h in cluster.lb_hosts
    }


_AUTH_PASS = re.compile(r"^(\s*auth_pass\s+)(\S+)$", re.M)


@dataclass(frozen=True)
class ExportFile:
    content: str
    mode: int = 0o644


Export = dict[str, ExportFile]


def _kind(path: str) -> str:
    if path in (CHECK_SCRIPT, NOTIFY_SCRIPT) or path.endswith(".sh"):
        return "script"
    if path == SYSCTL_CONF:
        return "sysctl"
    if path.startswith("/etc/systemd/"):
        return "dropin"
    if path in (HAPROXY_CFG, KEEPALIVED_CONF):
        return "config"
    if path == VRRP_NFT:
        return "vrrp_filter"  # halb's VRRP filter, MACs filled in at run time
    if path.endswith(".nft"):
        return "nft"  # halb's redirect of the public ports (co-located LB hosts)
    raise InputError(f"halb export: no Ansible task for rendered file {path}")


def _without_password(conf: str, password: str | None, host: str) -> str:
    """keepalived.conf with each `auth_pass VALUE` replaced by the placeholder."""
    if not password:
        return conf
    out = _AUTH_PASS.sub(
        lambda m: m.group(1) + PLACEHOLDER if m.group(2) == password else m.group(0), conf
    )
    if PLACEHOLDER not in out or password in out.replace(PLACEHOLDER, ""):
        raise InputError(
            f"halb export: the VRRP password of {host} could not be kept out of "
            "keepalived.conf (it also appears in another setting); choose another password"
        )
    return out


def _yaml(data: Any) -> str:
    return "---\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def _vip_roles(cluster: Cluster, host: str) -> dict[str, list[str]]:
    """The VIPs this host holds once keepalived settles: each is the top priority's (with
    preemption; with nopreempt any peer may keep a VIP, so nothing is waited for)."""
    held: list[str] = []
    free: list[str] = []
    if not cluster.spec.vrrp.nopreempt:
        for v in cluster.vips:
            top = max(v.priorities, key=lambda h: v.priorities[h])
            (held if top == host else free).append(v.address)
    return {"held": held, "free": free}


def _host_vars(cluster: Cluster, host: str, files: HostFiles) -> str:
    entries = [
        {"path": p, "mode": f"{f.mode:04o}", "kind": _kind(p)} for p, f in sorted(files.items())
    ]
    dirs = sorted({str(PurePosixPath(p).parent) for p in files} | set(RUNTIME_DIRS))
    return f"# Written by halb export ansible {__version__}.\n" + _yaml(
        {
            "halb_export_files": entries,
            "halb_export_dirs": dirs,
            "halb_export_vips": _vip_roles(cluster, host),
            "halb_vrrp_interfaces": list(interfaces(cluster)),
            "halb_mac_pattern": MAC_RE.pattern,  # what a peer's MAC read must be
            "halb_vrrp_macs": [
                {"placeholder": ph, "host": peer, "interface": i}
                for peer, by_iface in mac_placeholders(cluster).items()
                if peer != host
                for i, ph in by_iface.items()
            ],
        }
    )


def _password_vars(cluster: Cluster) -> dict[str, Any]:
    """Where the play reads the VRRP password at run time (an extra-var overrides it)."""
    auth = cluster.spec.vrrp.auth
    if not cluster.auth_password or auth is None:
        return {"halb_vrrp_auth": False}
    if auth.password_file is not None:
        pf = auth.password_file
        pf = pf if pf.is_absolute() else cluster.base_dir / pf
        source = f"lookup('ansible.builtin.file', {str(pf.resolve())!r}) | trim"
    else:
        spec = str(cluster.config_path.resolve())
        source = (
            f"(lookup('ansible.builtin.file', {spec!r}) | from_yaml).vrrp.auth.password | string"
        )
    return {
        "halb_vrrp_auth": True,
        "halb_vrrp_placeholder": PLACEHOLDER,
        "halb_vrrp_auth_pass": "{{ " + source + " }}",
    }


def _playbook(cluster: Cluster) -> str:
    names = [h.name for h in cluster.lb_hosts]
    play = {
        "name": f"halb load balancers of cluster {cluster.name}",
        "hosts": ":".join(names),
        "gather_facts": False,
        # root logins run as is; other users become root with sudo (ansible_become_pass)
        "become": "{{ (ansible_user | default('root')) != 'root' }}",
        "vars": {
            "halb_export_root": "{{ playbook_dir }}/" + HOST_FILES,
            # as long as halb deploy waits for one holder per VIP
            "halb_vip_wait": int(vip_wait(cluster.advert_int)),
            **_password_vars(cluster),
        },
        "roles": [ROLE],
    }
    head = (
        f"# Written by halb export ansible {__version__} for cluster {cluster.name}\n"
        f"# from {_comment(str(cluster.config_path.resolve()))}. Re-export after changing "
        "the spec.\n"
        "#   ansible-playbook site.yml [--check --diff] [--limit HOST]\n"
    )
    return head + _yaml([play])


# Ansible reads ansible.cfg with configparser: a value ends at the line's end, loses its
# outer blanks, and `;` after a blank starts a comment (values are read raw: `%` is kept).
_CFG_COMMENT = re.compile(r"(?:^|\s);")


def cfg_value(value: str, what: str) -> str:
    """`value` as one ansible.cfg value that reads back exactly, else InputError."""
    if not value.isprintable() or value != value.strip() or _CFG_COMMENT.search(value):
        raise InputError(
            f"halb export: {what} {one_line(repr(value), 200)} cannot be written into "
            "ansible.cfg (it holds a line break or control character, outer blanks, or "
            "' ;', which Ansible's ini reader would cut or read as a new setting); "
            "rename the folder"
        )
    return value


def _comment(text: str) -> str:
    """Text for a `#` comment line: escaped, so a newline in a path cannot end it."""
    return one_line(text, 400)


def _ansible_cfg(cluster: Cluster) -> str:
    inventory = cfg_value(
        str((cluster.base_dir / cluster.spec.inventory).resolve()), "the inventory path"
    )
    return (
        f"# Written by halb export ansible {__version__}: the cluster's own inventory,\n"
        "# referenced (its passwords stay where they are).\n"
        "[defaults]\n"
        f"inventory = {inventory}\n"
        "roles_path = roles\n"
        "forks = 50\n"
        "interpreter_python = auto_silent\n"
        "retry_files_enabled = false\n"
        "\n"
        "[ssh_connection]\n"
        "pipelining = true\n"
    )


_SERVICE_SH = r"""#!/bin/sh
# Written by halb export ansible {version}: start and reload HAProxy and keepalived the
# way `halb deploy` does (halb/services.py), for systemd and for halb's supervisor.
# usage: halb-service.sh ensure|reload haproxy|keepalived systemd|supervisor
set -u
action=$1 name=$2 manager=$3
case $name in
  haproxy) cfg={hcfg}; pidfile={hpid}; sig={hsig}
    check() {{ {hcheck}; }}
    start() {{ {hstart}; }} ;;
  keepalived) cfg={kcfg}; pidfile={kpid}; sig={ksig}
    check() {{ {kcheck}; }}
    start() {{ {kstart}; }} ;;
  *) echo "unknown service $name" >&2; exit 2 ;;
esac
case $manager in systemd|supervisor) ;; *)
  echo "unknown halb_service_manager $manager (valid: supervisor, systemd)" >&2; exit 2 ;;
esac

main_pid() {{
  if [ "$manager" = systemd ]; then
    systemctl is-active --quiet "$name" || return 0
    pid=$(systemctl show -p MainPID --value "$name")
    [ "$pid" != 0 ] && echo "$pid"
  else
    pid=$(sh -c {pids} sh "$pidfile" "$name") && [ "$pid" != - ] && echo "$pid"
  fi
  return 0
}}

children() {{ cat /proc/"$1"/task/"$1"/children 2>/dev/null; }}

case $action in
ensure)
  [ -n "$(main_pid)" ] && {{ echo running; exit 0; }}
  if [ "$manager" = systemd ]; then
    systemctl start "$name" && systemctl enable --quiet "$name" || exit 1
  else
    out=$(start </dev/null 2>&1) || {{ echo "$out" >&2; exit 1; }}
  fi
  i=0
  while [ -z "$(main_pid)" ]; do
    i=$((i + 1)); [ "$i" -gt 50 ] && {{ echo "$name did not come up within 10s" >&2; exit 1; }}
    sleep 0.2
  done
  echo started ;;
reload)
  out=$(check 2>&1) || {{ echo "$cfg failed validation, not reloading $name: $out" >&2; exit 1; }}
  pid=$(main_pid)
  [ -z "$pid" ] && {{ echo "not running"; exit 0; }}
  old=" $(children "$pid" | tr '\n' ' ') "
  if [ "$manager" = systemd ]; then systemctl reload "$name" || exit 1
  else kill -"$sig" "$pid" || exit 1; fi
  if [ "$name" = haproxy ]; then
    # a new worker under the same master, else the reload failed (old workers still serve)
    i=0
    while :; do
      kill -0 "$pid" 2>/dev/null || {{ echo "haproxy exited during reload" >&2; exit 1; }}
      for c in $(children "$pid"); do
        case "$old" in *" $c "*) ;; *) echo reloaded; exit 0 ;; esac
      done
      i=$((i + 1)); [ "$i" -gt 50 ] && {{ echo "no new haproxy worker" >&2; exit 1; }}
      sleep 0.2
    done
  fi
  [ -n "$(main_pid)" ] || {{ echo "$name exited on reload" >&2; exit 1; }}
  echo reloaded ;;
*) echo "unknown action $action" >&2; exit 2 ;;
esac
"""


def service_script() -> str:
    h, k = SUPERVISED["haproxy"], SUPERVISED["keepalived"]
    return _SERVICE_SH.format(
        version=__version__,
        hcfg=shlex.quote(HAPROXY_CFG),
        kcfg=shlex.quote(KEEPALIVED_CONF),
        hpid=shlex.quote(h.pidfile),
        kpid=shlex.quote(k.pidfile),
        hsig=h.reload_signal,
        ksig=k.reload_signal,
        hcheck=shlex.join(validate_argv("haproxy", HAPROXY_CFG)),
        kcheck=shlex.join(validate_argv("keepalived", KEEPALIVED_CONF)),
        pids=shlex.quote(PIDS_SCRIPT),
        hstart=shlex.join(start_argv("haproxy")),
        kstart=shlex.join(start_argv("keepalived")),
    )


def _role_file(name: str) -> str:
    return (resources.files("halb.export") / "role" / name).read_text()


def build(cluster: Cluster, rendered: Mapping[str, HostFiles]) -> Export:
    """Every file of the export by its path relative to the export folder."""
    out: Export = {
        MARKER: ExportFile(f"halb export ansible {__version__}\n"),
        "ansible.cfg": ExportFile(_ansible_cfg(cluster)),
        "site.yml": ExportFile(_playbook(cluster)),
        f"roles/{ROLE}/files/halb-service.sh": ExportFile(service_script(), 0o755),
    }
    for name in _ROLE_FILES:
        out[f"roles/{ROLE}/{name}"] = ExportFile(_role_file(name))
    rendered = with_vrrp_filter(cluster, rendered, mac_placeholders(cluster))
    for host, files in rendered.items():
        out[f"host_vars/{host}.yml"] = ExportFile(_host_vars(cluster, host, files))
        for path, f in files.items():
            text = f.content
            if path == KEEPALIVED_CONF:
                text = _without_password(text, cluster.auth_password, host)
            # modes on the target come from host_vars; here the copy is plain data
            out[f"{HOST_FILES}/{host}{path}"] = ExportFile(text, 0o644)
    return out


def write(dest: Path, export: Export) -> None:
    """Replace `dest` with the export in one rename; refuse a folder that is not an export.

    A `dest` that is a symbolic link (`current -> export-1`) is followed: the folder it
    points to is replaced and the link stays.
    """
    if dest.is_symlink():
        try:
            dest = dest.resolve(strict=False)
        except (RuntimeError, OSError):
            raise InputError(f"{dest}: a symbolic link loop; give a folder") from None
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise InputError(
            f"{dest}: folder is not empty and is not a halb export; give an empty or new folder"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, f in sorted(export.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, f.content, f.mode)
        tmp.chmod(0o755)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{tmp.name}")
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
