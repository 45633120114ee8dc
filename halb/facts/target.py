"""What a deploy target has now: each target file's mode and sha256, live sysctl values,
whether the haproxy and keepalived commands exist, the OS (for the package manager), and,
read in the same round trip by the deploy, the services' pids and the host's addresses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from halb.errors import DeployError
from halb.facts.ipaddr import IfAddr
from halb.paths import OS_RELEASE
from halb.transport import sh

# argv: the target paths, "--", then the sysctl keys
_FACTS = rf"""
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  p=$1; shift
  if [ -f "$p" ]; then
    printf 'F %s %s\n' "$(stat -c %a "$p")" "$(sha256sum < "$p" | cut -d' ' -f1)"
  else
    echo 'F - -'
  fi
done
[ "${{1:-}}" = -- ] && shift
for k in "$@"; do printf 'S %s %s\n' "$k" "$(sysctl -n "$k" 2>/dev/null)"; done
for c in haproxy keepalived; do
  if command -v "$c" >/dev/null 2>&1; then echo "C $c 1"; else echo "C $c 0"; fi
done
if [ -r {OS_RELEASE} ]; then . {OS_RELEASE}; echo "O ${{ID:-}} ${{ID_LIKE:-}}"; fi
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


def facts_argv(paths: Sequence[str], sysctl_keys: Sequence[str]) -> list[str]:
    return sh(_FACTS, *paths, "--", *sysctl_keys)


def parse_facts_output(
    paths: Sequence[str], text: str
) -> tuple[dict[str, RemoteFile | None], tuple[str, ...], tuple[str, ...], dict[str, str]]:
    files: dict[str, RemoteFile | None] = {}
    live: dict[str, str] = {}
    missing: list[str] = []
    os_ids: tuple[str, ...] = ()
    flines = [ln for ln in text.splitlines() if ln.startswith("F ")]
    if len(flines) != len(paths):
        raise DeployError(f"unexpected answer to the file check ({len(flines)} lines)")
    for path, line in zip(paths, flines, strict=True):
        _, mode, digest = line.split()
        files[path] = None if mode == "-" else RemoteFile(digest, int(mode, 8))
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["C"] and len(parts) == 3 and parts[2] == "0":
            missing.append(parts[1])
        elif parts[:1] == ["O"]:
            os_ids = tuple(parts[1:])
        elif parts[:1] == ["S"] and len(parts) >= 2:
            live[parts[1]] = " ".join(parts[2:])
    return files, tuple(missing), os_ids, live
