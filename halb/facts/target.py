"""What a deploy target has now: each target file's mode and sha256, live sysctl values,
whether the haproxy and keepalived commands exist, the OS (for the package manager), and,
read in the same round trip by the deploy, the services' pids and the host's addresses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from halb.errors import DeployError
from halb.facts.ipaddr import IfAddr
from halb.paths import OS_RELEASE
from halb.shell import sh

# argv: the number of sysctl keys, then (key, /proc/sys path) per key, then the target
# paths. Few processes on purpose (a deploy runs this on every host at once, and each fork
# costs CPU that the hosts share on a small machine): sysctl values, pids of the commands
# and the OS come from shell builtins; one `stat` and one `sha256sum` cover every file.
# "E" ends a complete answer.
_FACTS = rf"""
k=$1; shift
while [ "$k" -gt 0 ]; do
  v=; if [ -r "$2" ]; then IFS= read -r v < "$2" || :; fi
  printf 'S %s %s\n' "$1" "$v"; shift 2; k=$((k - 1))
done
for p do shift; if [ -f "$p" ]; then set -- "$@" "$p"; fi; done
if [ $# -gt 0 ]; then stat -c 'M %a %n' -- "$@" && sha256sum -- "$@" || exit 1; fi
for c in haproxy keepalived; do
  if command -v "$c" >/dev/null 2>&1; then echo "C $c 1"; else echo "C $c 0"; fi
done
if [ -r {OS_RELEASE} ]; then . {OS_RELEASE}; echo "O ${{ID:-}} ${{ID_LIKE:-}}"; fi
echo E
"""


@dataclass(frozen=True)
class RemoteFile:
    sha256: str
    mode: int


@dataclass(frozen=True)
class TargetFacts:
    """What a host has now, as far as the deploy plan cares."""

    files: Mapping[str, RemoteFile | None]
    running: Mapping[str, bool]
    missing: tuple[str, ...] = ()  # packages whose command is missing
    os_ids: tuple[str, ...] = ()  # ID and ID_LIKE from /etc/os-release
    sysctl: Mapping[str, str] = field(default_factory=dict)  # live values of our keys
    # main pids (None: not running) and `ip -o addr`, when read in the same round trip
    pids: Mapping[str, int | None] = field(default_factory=dict)
    addrs: tuple[IfAddr, ...] | None = None
    # halb's VRRP filter table is loaded (a reboot drops it; read with the MACs)
    vrrp_filter_loaded: bool = True


def proc_sys_path(key: str) -> str:
    """Where the kernel shows a sysctl key: dots are separators, a slash stands for a dot
    inside a name (as `sysctl` writes interface names such as eth0.100)."""
    return "/proc/sys/" + "/".join(part.replace("/", ".") for part in key.split("."))


def facts_argv(paths: Sequence[str], sysctl_keys: Sequence[str]) -> list[str]:
    pairs = [x for k in sysctl_keys for x in (k, proc_sys_path(k))]
    return sh(_FACTS, str(len(sysctl_keys)), *pairs, *paths)


def parse_facts_output(
    paths: Sequence[str], text: str
) -> tuple[dict[str, RemoteFile | None], tuple[str, ...], tuple[str, ...], dict[str, str]]:
    modes: dict[str, int] = {}
    digests: dict[str, str] = {}
    live: dict[str, str] = {}
    missing: list[str] = []
    os_ids: tuple[str, ...] = ()
    lines = text.splitlines()
    if "E" not in lines:
        raise DeployError("unexpected answer to the file check (cut short)")
    for line in lines:
        parts = line.split()
        if parts[:1] == ["M"] and len(parts) >= 3:
            modes[line.split(" ", 2)[2]] = int(parts[1], 8)
        elif len(parts) >= 2 and len(parts[0]) == 64 and line[64:66] == "  ":
            digests[line[66:]] = parts[0]  # sha256sum: "<digest>  <path>"
        elif parts[:1] == ["C"] and len(parts) == 3 and parts[2] == "0":
            missing.append(parts[1])
        elif parts[:1] == ["O"]:
            os_ids = tuple(parts[1:])
        elif parts[:1] == ["S"] and len(parts) >= 2:
            live[parts[1]] = " ".join(parts[2:])
    files: dict[str, RemoteFile | None] = {
        p: RemoteFile(digests[p], modes[p]) if p in modes and p in digests else None for p in paths
    }
    return files, tuple(missing), os_ids, live
