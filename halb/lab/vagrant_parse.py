"""What Vagrant prints, read (pure): `vagrant ssh-config`, `vagrant status
--machine-readable`, and its error message as one line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from halb import kinds
from halb.errors import HalbError
from halb.kinds import shown

# ssh-config options passed on to every login; the rest either become inventory vars
# (HostName, Port, User, IdentityFile) or are replaced by halb's own host-key policy
# (Vagrant switches checking off; the lab pins each VM's key on first use instead).
PASSED_OPTIONS = {
    "identitiesonly": "IdentitiesOnly",
    "pubkeyacceptedkeytypes": "PubkeyAcceptedKeyTypes",
    "pubkeyacceptedalgorithms": "PubkeyAcceptedAlgorithms",
    "hostkeyalgorithms": "HostKeyAlgorithms",
}
_OPTION_VALUE = re.compile(r"[A-Za-z0-9+,@._-]{1,200}", re.ASCII)
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", re.ASCII)


class VagrantError(HalbError):
    """Vagrant failed or printed something halb cannot use (exit 1)."""


# --- vagrant ssh-config ----------------------------------------------------------------


@dataclass(frozen=True)
class SshEntry:
    """One `Host` block of `vagrant ssh-config`."""

    host: str
    hostname: str
    port: int
    user: str
    identity_file: str
    options: tuple[tuple[str, str], ...] = field(default=())  # the passed-on ones, in order


def parse_ssh_config(text: str) -> dict[str, SshEntry]:
    """`vagrant ssh-config` output: host -> how to log in. Blank lines may sit inside a
    block (Vagrant's template leaves them), so only `Host` lines start one."""
    blocks: list[tuple[str, dict[str, str], list[tuple[str, str]]]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, value = _split_option(line, n)
        k = key.lower()
        if k == "host":
            blocks.append((value, {}, []))
            continue
        if not blocks:
            raise VagrantError(f"vagrant ssh-config, line {n}: {key} before any Host line")
        _, seen, passed = blocks[-1]
        seen.setdefault(k, value)  # ssh takes the first value of an option
        if k in PASSED_OPTIONS and _OPTION_VALUE.fullmatch(value):
            passed.append((PASSED_OPTIONS[k], value))
    out: dict[str, SshEntry] = {}
    for host, seen, passed in blocks:
        out[host] = _entry(host, seen, tuple(passed))
    return out


def _split_option(line: str, n: int) -> tuple[str, str]:
    m = re.match(r"([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*)", line)
    if not m or not m.group(2).strip():
        raise VagrantError(f"vagrant ssh-config, line {n}: not `Option value`: {shown(line)}")
    value = m.group(2).strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # IdentityFile "/a path/with space"
        value = value[1:-1]
    return m.group(1), value


def _entry(host: str, seen: Mapping[str, str], passed: tuple[tuple[str, str], ...]) -> SshEntry:
    def need(key: str, name: str) -> str:
        if key not in seen:
            raise VagrantError(f"vagrant ssh-config: host {host} has no {name} line")
        return seen[key]

    try:
        kinds.host_name(host)
        hostname = kinds.host_name(need("hostname", "HostName"))
    except ValueError as e:
        raise VagrantError(f"vagrant ssh-config: host {shown(host)}: {e}") from None
    port_text = need("port", "Port")
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise VagrantError(f"vagrant ssh-config: host {host}: Port {shown(port_text)}")
    user = need("user", "User")
    if not _USER.fullmatch(user):
        raise VagrantError(f"vagrant ssh-config: host {host}: User {shown(user)}")
    key = need("identityfile", "IdentityFile")
    if not key.isprintable() or "'" in key:
        raise VagrantError(f"vagrant ssh-config: host {host}: IdentityFile {shown(key)}")
    return SshEntry(host, hostname, int(port_text), user, key, passed)


# --- vagrant status --machine-readable -----------------------------------------------


@dataclass(frozen=True)
class VmState:
    name: str
    provider: str
    state: str  # Vagrant's id: running, poweroff, not_created, ...
    description: str  # its short words: "running", "not created"
    ip: str | None = None  # its private-network address, when the lab's layout is known


def machine_lines(text: str) -> list[tuple[str, str, list[str]]]:
    """`timestamp,target,type,data...` lines as (target, type, data), data unescaped."""
    out = []
    for line in text.splitlines():
        parts = line.rstrip("\r").split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        data = [
            p.replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")
            for p in parts[3:]
        ]
        out.append((parts[1], parts[2], data))
    return out


def parse_status(text: str) -> list[VmState]:
    """The VMs of `vagrant status --machine-readable`, in Vagrant's order."""
    found: dict[str, dict[str, str]] = {}
    for target, kind, data in machine_lines(text):
        if not target or not data:
            continue
        if kind in ("provider-name", "state", "state-human-short"):
            found.setdefault(target, {})[kind] = data[0]
    return [
        VmState(
            name,
            v.get("provider-name", ""),
            v.get("state", "unknown"),
            v.get("state-human-short", v.get("state", "unknown")),
        )
        for name, v in found.items()
    ]


# --- Vagrant's error, as one line ----------------------------------------------------


def error_text(out: str, err: str) -> str:
    """What Vagrant said went wrong: an `error-exit` line (machine-readable runs), else
    the first paragraph it printed on stderr (two when the first ends with ':'), with
    Ruby's own warnings left out."""
    for _, kind, data in machine_lines(out):
        if kind == "error-exit" and len(data) >= 2:
            return _paragraphs(data[1])
    lines = [ln for ln in err.splitlines() if ": warning: " not in ln]
    return _paragraphs("\n".join(lines))


def _paragraphs(text: str) -> str:
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    paras = [p for p in paras if p]
    if not paras:
        return ""
    if paras[0].endswith(":") and len(paras) > 1:
        return f"{paras[0]} {paras[1]}"
    return paras[0]
