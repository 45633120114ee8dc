"""A running lab as seen by its users: hosts, addresses, and a way to run commands inside."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halb.errors import InputError
from halb.facts.ipaddr import IP_ADDR, holders, parse_ip_addr
from halb.files import atomic_write
from halb.lab import netns
from halb.lab.topology import TASKBOX, Init, LabHost, LabPlan, LabRole, plan
from halb.paths import LAB_CONTROL_DIR
from halb.transport.netns import nsenter_argv

STATE_FILE = "lab.json"
KEY_FILE = "id_ed25519"
KNOWN_HOSTS_FILE = "known_hosts"
INVENTORY_FILE = "hosts.ini"
SPEC_FILE = "halb.yaml"
STATE_DIR = "state"
Progress = Callable[[str], None]  # one line of what a lab command is doing
CONTROL_DIR = LAB_CONTROL_DIR.lstrip("/")  # inside a host's state dir, as inside the host
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


@dataclass
class Lab:
    plan: LabPlan
    dir: Path
    password: str = field(repr=False)
    sudo_password: str = field(default="", repr=False)  # the sudo hosts' user's password
    pids: dict[str, list[int]] = field(default_factory=dict)

    # --- names and addresses ---------------------------------------------------------

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def hosts(self) -> dict[str, LabHost]:
        """Every host by name, the taskbox first, then LBs, masters, nodes."""
        return {h.name: h for h in self.plan.hosts}

    @property
    def lbs(self) -> list[str]:
        """The hosts that carry the VIPs: the LB hosts, or the masters of a co-located lab."""
        return [h.name for h in self.plan.by_role(LabRole.LB)] or self.masters

    @property
    def masters(self) -> list[str]:
        return [h.name for h in self.plan.by_role(LabRole.MASTER)]

    @property
    def nodes(self) -> list[str]:
        return [h.name for h in self.plan.by_role(LabRole.NODE)]

    @property
    def password_hosts(self) -> list[str]:
        return [h.name for h in self.plan.hosts if h.password]

    @property
    def sudo_hosts(self) -> list[str]:
        """Hosts whose login is a non-root user that becomes root with sudo and a password."""
        return [h.name for h in self.plan.hosts if h.sudo_user]

    @property
    def secrets(self) -> list[str]:
        """Every secret of the lab (none may show up in output, argv or logs)."""
        return [s for s in (self.password, self.sudo_password) if s]

    @property
    def subnet(self) -> str:
        return self.plan.subnet

    @property
    def vip_internal(self) -> str:
        return self.plan.vip_internal

    @property
    def vip_external(self) -> str:
        return self.plan.vip_external

    def address(self, host: str) -> str:
        return self.plan.host(host).address

    def vip_holders(self) -> dict[str, list[str]]:
        """{VIP: the LB hosts that have it configured now}, read with `ip -o addr`."""
        seen = {lb: parse_ip_addr(self.run(lb, IP_ADDR).stdout) for lb in self.lbs}
        return holders(seen, {v: v for v in (self.vip_internal, self.vip_external)})

    # --- files -----------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.dir / STATE_DIR

    def host_dir(self, host: str) -> Path:
        """The host's files as seen from outside (its /etc/haproxy is etc-haproxy here)."""
        return self.state_dir / "hosts" / self.plan.host(host).name

    def mount_file(self, host: str) -> Path:
        return self.state_dir / "ns" / f"{self.plan.host(host).netns}.mnt"

    def uts_file(self, host: str) -> Path:
        return self.state_dir / "ns" / f"{self.plan.host(host).netns}.uts"

    @property
    def key(self) -> Path:
        return self.dir / KEY_FILE

    @property
    def known_hosts(self) -> Path:
        return self.dir / KNOWN_HOSTS_FILE

    @property
    def inventory(self) -> Path:
        return self.dir / INVENTORY_FILE

    @property
    def spec(self) -> Path:
        return self.dir / SPEC_FILE

    # --- running things inside ---------------------------------------------------------

    def enter_argv(self, host: str = TASKBOX) -> list[str]:
        """`nsenter ... --` prefix that runs a command inside `host`."""
        h = self.plan.host(host)
        if h.role is LabRole.TASKBOX:
            return nsenter_argv(h.netns)
        if h.init is Init.SYSTEMD:
            pid = netns.init_pid(h.netns)
            if pid is None:
                raise netns.LabError(f"lab {self.name}: systemd is not running on {host}")
            return netns.init_enter_argv(pid)
        return nsenter_argv(h.netns, self.mount_file(host), self.uts_file(host))

    def run(
        self,
        host: str,
        argv: Sequence[str],
        input: str | None = None,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside `host` ("taskbox" = the taskbox) and capture its output."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(
            [*self.enter_argv(host), *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=check,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def spawn(self, host: str, argv: Sequence[str], log_name: str) -> None:
        """Start a long-running process inside `host`, detached, output to its lab log."""
        log = self.host_dir(host) / "lab-logs" / log_name
        log.parent.mkdir(parents=True, exist_ok=True)
        netns.spawn_daemon(self.enter_argv(host), argv, log)

    def ssh_argv(self, host: str, *, batch: bool = True) -> list[str]:
        """ssh from the taskbox to `host` as root with the lab key and known_hosts."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.key),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
        ]
        if batch:
            argv += ["-o", "BatchMode=yes"]
        return [*argv, f"root@{self.address(host)}"]

    def set_control(self, host: str, endpoint: str, code: int | None) -> None:
        """Make `endpoint` (readyz, livez, healthz, console) answer `code`; None = normal."""
        d = self.host_dir(host) / CONTROL_DIR
        f = d / endpoint
        if code is None or code == 200:
            f.unlink(missing_ok=True)
            return
        atomic_write(f, f"{code}\n", 0o644)

    def set_readyz(self, master: str, code: int | None) -> None:
        if self.plan.host(master).role is not LabRole.MASTER:
            raise InputError(f"lab {self.name}: {master} is not a master")
        self.set_control(master, "readyz", code)

    # --- persistence -------------------------------------------------------------------

    @staticmethod
    def _own_ns(h: LabHost) -> bool:
        """No namespace files: the taskbox, and systemd hosts (their PID 1 holds them)."""
        return h.role is LabRole.TASKBOX or h.init is Init.SYSTEMD

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "octet": self.plan.octet,
            "subnet": self.subnet,
            "dir": str(self.dir),
            "vip_internal": self.vip_internal,
            "vip_external": self.vip_external,
            "switch_netns": self.plan.switch_netns,
            "init": self.plan.init.value,
            "ip_family": self.plan.ip_family,
            "password": self.password,
            "sudo_password": self.sudo_password,
            "hosts": [
                {
                    "name": h.name,
                    "role": h.role.value,
                    "address": h.address,
                    "address6": h.address6,
                    "netns": h.netns,
                    "password_login": h.password,
                    "sudo_user": h.sudo_user,
                    "init": h.init.value,
                    "mount_ns": None if self._own_ns(h) else str(self.mount_file(h.name)),
                    "uts_ns": None if self._own_ns(h) else str(self.uts_file(h.name)),
                    "pids": self.pids.get(h.name, []),
                }
                for h in self.plan.hosts
            ],
        }


def load(lab_dir: Path) -> Lab:
    """The lab described by `lab_dir/lab.json`."""
    f = lab_dir / STATE_FILE
    try:
        data = json.loads(f.read_text())
        hosts = data["hosts"]
        p = plan(
            data["name"],
            lbs=sum(1 for h in hosts if h["role"] == "lb"),
            masters=sum(1 for h in hosts if h["role"] == "master"),
            nodes=sum(1 for h in hosts if h["role"] == "node"),
            octet=int(data["octet"]),
            password_hosts=frozenset(h["name"] for h in hosts if h["password_login"]),
            sudo_hosts=frozenset(h["name"] for h in hosts if h.get("sudo_user")),
            init=Init(data.get("init", Init.PLAIN.value)),
            ip_family=str(data.get("ip_family", "4")),
        )
        return Lab(
            plan=p,
            dir=Path(data["dir"]),
            password=data["password"],
            sudo_password=data.get("sudo_password", ""),
            pids={h["name"]: list(h.get("pids", [])) for h in hosts},
        )
    except FileNotFoundError:
        raise InputError(f"{f}: no lab here (run `halb lab up` first)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{f}: not a lab state file ({e})") from None
