"""Whether a lab host still sees its own private files (/etc/shadow, /etc/hosts, ...) and
not the machine's: facts gathered inside the host's mount namespace, judged here.

A host's private files sit in the upper layer of an overlay (a plain host's /etc, a
systemd host's whole root; see hostfiles.py). A file is the host's own when the mount
that serves its path in the host is an overlay of this host's, and that overlay's upper
layer holds the file (else the lower layer, the machine's, shows through).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from halb.lab import netns
from halb.lab.hostfiles import HOST_FILES

# Runs in the host's mount namespace, at its root (for a systemd host, outside the root
# it is chrooted into). $1: the pid of a systemd host's PID 1, or "" for a plain host;
# then the paths. One line per path: path, fstype, mount point and upper dir of the mount
# that serves it, and 1 if that upper dir holds the file, else 0.
FACTS = r"""
R=""
if [ -n "$1" ]; then R=$(readlink "/proc/$1/root"); fi
shift
for p; do
  f="$R$p"
  findmnt -n -r -o FSTYPE,TARGET,OPTIONS -T "$f" | head -n 1 | {
    if ! read -r fs tg opts; then printf '%s\t-\t-\t-\t0\n' "$p"; exit 0; fi
    up=$(printf '%s\n' "$opts" | tr , '\n' | sed -n 's/^upperdir=//p')
    if [ "$tg" = / ]; then rel="$f"; else rel="${f#"$tg"}"; fi
    u=0
    if [ -n "$up" ] && { [ -e "$up$rel" ] || [ -L "$up$rel" ]; }; then u=1; fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$fs" "$tg" "${up:--}" "$u"
  }
done
"""


@dataclass(frozen=True)
class FileView:
    """Where a host's view of `path` comes from."""

    path: str
    fstype: str
    mount: str
    upper: str
    in_upper: bool


def private_paths() -> list[str]:
    """The paths a lab host keeps private (its users, password hashes, names)."""
    return [target for _, target in HOST_FILES]


def parse_facts(text: str) -> list[FileView]:
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 5:
            out.append(FileView(parts[0], parts[1], parts[2], parts[3], parts[4] == "1"))
    return out


def is_own(view: FileView, host: str) -> bool:
    """Served by an overlay whose upper layer is in this host's dir and holds the file."""
    return view.fstype == "overlay" and view.in_upper and f"/hosts/{host}/" in view.upper + "/"


def not_own(views: Iterable[FileView], host: str, paths: Sequence[str]) -> list[str]:
    """The paths of `paths` the host does not see from its own layer (or not at all)."""
    own = {v.path for v in views if is_own(v, host)}
    return [p for p in paths if p not in own]


# --- effects -------------------------------------------------------------------------


def _mount_file(netns_name: str) -> str | None:
    """The file that holds a plain host's mount namespace (lab.json is not needed)."""
    for m in netns.mounts():
        if os.path.basename(m.target) == f"{netns_name}.mnt":
            return m.target
    return None


def mount_enter(netns_name: str) -> tuple[list[str], str] | None:
    """(`nsenter ... --` into the host's mount namespace at its root, the pid of its
    systemd or ""), or None when nothing holds that namespace any more."""
    init = netns.init_pid(netns_name)
    if init is not None:
        return ["nsenter", "-t", str(init), "-m", "--"], str(init)
    f = _mount_file(netns_name)
    if f is None or not Path(f).exists():
        return None
    return ["nsenter", f"--mount={f}", "--"], ""


def foreign_files(netns_name: str, host: str) -> list[str]:
    """The host's private paths that it does not see from its own layer; all of them when
    its mount namespace cannot be entered."""
    paths = private_paths()
    enter = mount_enter(netns_name)
    if enter is None:
        return paths
    argv, init = enter
    cp = netns.run([*argv, "sh", "-c", FACTS, "sh", init, *paths], check=False)
    return not_own(parse_facts(cp.stdout), host, paths)


def isolation_lost(lab_name: str, lost: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The message for hosts (name, paths) that no longer see their own files."""
    which = "; ".join(f"{h} ({', '.join(paths)})" for h, paths in lost)
    return (
        f"lab {lab_name}: isolation gone on {which}: these would be the machine's files, "
        "not the host's own; refusing to go on. Rebuild the lab: "
        f"`halb lab down --name {lab_name}`, then `halb lab up`"
    )


def require_own(lab_name: str, hosts: Iterable[tuple[str, str]]) -> None:
    """Raise LabError naming every host (name, netns) that lost a private file."""
    lost = [(h, bad) for h, ns in hosts if (bad := foreign_files(ns, h))]
    if lost:
        raise netns.LabError(isolation_lost(lab_name, lost))
