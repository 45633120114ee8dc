"""The VM lab on a machine without a usable hypervisor or network: halb's own Debian box,
libvirt + QEMU in the lab's own namespaces, the packaged Vagrantfile run unchanged.

    isolate_by_default(os.environ)                   # this machine's way, or the user's own
    up(lab_dir, sizes, progress)                     -> Layout (a failure takes it all down)
    status(lab_dir) / down(lab_dir, progress) / exec_argv(lab_dir)

What a workstation with VirtualBox or KVM and the public box does instead is plain
vagrant_run (HALB_VAGRANT_ISOLATE=0, or a HALB_VAGRANT_BOX / HALB_VAGRANT_PROVIDER of the
user's): the Vagrantfile is the same, only the HALB_VAGRANT_* settings differ.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from halb.errors import HalbError, InputError
from halb.lab import fakeapi, vagrant_run, vm_box, vm_ns
from halb.lab.model import Progress
from halb.lab.vagrant import Layout, check_env
from halb.lab.vagrant_parse import VagrantError, VmState
from halb.lab.vm_boxbuild import ensure_box

ISOLATE_ENV = "HALB_VAGRANT_ISOLATE"
CONSOLES_DIR = "consoles"  # kept after a failed up (its story), removed by down
BOOT_TIMEOUT = 900  # seconds per VM: a TCG boot under load on 2 cores
HEARTBEAT = 30.0
VM_CPUS = 2


@dataclass(frozen=True)
class Sizes:
    lbs: int = 2
    masters: int = 1
    nodes: int = 1

    def env(self) -> dict[str, str]:
        return {
            "HALB_VAGRANT_LBS": str(self.lbs),
            "HALB_VAGRANT_MASTERS": str(self.masters),
            "HALB_VAGRANT_NODES": str(self.nodes),
        }


def isolate_by_default(env: Mapping[str, str]) -> bool:
    """halb's own box and namespaces, unless the user asked for their own Vagrant set-up
    (a box or provider of theirs, VirtualBox on PATH, or HALB_VAGRANT_ISOLATE=0)."""
    given = env.get(ISOLATE_ENV, "").strip()
    if given:
        if given not in ("0", "1"):
            raise InputError(f"{ISOLATE_ENV}={given!r}: give 1 (halb's box, namespaces) or 0")
        return given == "1"
    if env.get("HALB_VAGRANT_BOX", "").strip() or env.get("HALB_VAGRANT_PROVIDER", "").strip():
        return False
    return shutil.which("VBoxManage", path=env.get("PATH")) is None


def is_isolated(lab_dir: Path) -> bool:
    return "netns" in vagrant_run.read_state(lab_dir)


def accel(env: Mapping[str, str]) -> str:
    """kvm where KVM runs stock kernels; qemu (TCG) otherwise. kvm_pvm, the KVM of some
    cloud machines, runs only PVM-built guest kernels: a stock Debian kernel hangs there."""
    given = env.get("HALB_VAGRANT_LIBVIRT_DRIVER", "").strip()
    if given:
        return given
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK) and not Path("/sys/module/kvm_pvm").exists()
    return "kvm" if usable else "qemu"


def lab_env(
    ns: vm_ns.VmNs, consoles: Path, box: vm_box.BoxPaths, sizes: Sizes, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment `vagrant` runs with: halb's box, libvirt in the lab, TCG if needed."""
    driver = accel(base)
    env = {
        **base,
        **sizes.env(),
        "VAGRANT_HOME": str(box.vagrant_home),
        "VAGRANT_DOTFILE_PATH": str(ns.dotfile),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "LIBVIRT_DEFAULT_URI": "qemu:///system",
        "HALB_VAGRANT_BOX": vm_box.box_name(vm_box.recipe_key()),
        "HALB_VAGRANT_PROVIDER": "libvirt",
        "HALB_VAGRANT_LIBVIRT_DRIVER": driver,
        "HALB_VAGRANT_CONSOLE_DIR": str(consoles),
        "HALB_VAGRANT_APT_REPO": vm_ns.repo_url(),
        "HALB_VAGRANT_FAKEAPI": str(Path(fakeapi.__file__).resolve()),
    }
    env.setdefault("HALB_VAGRANT_BOOT_TIMEOUT", str(BOOT_TIMEOUT))
    # Two vCPUs are two niced QEMU threads: keepalived's 1 s check (2 s timeout) kept
    # timing out on one under TCG on busy cores, and the VIP went to FAULT.
    env.setdefault("HALB_VAGRANT_CPUS", str(VM_CPUS))
    if driver == "qemu":
        env["HALB_VAGRANT_EMULATOR"] = str(ns.emulator)
    return env


def vrrp_profile(run_env: Mapping[str, str]) -> str:
    """`emulated` (slower checks and timeouts, docs/profiles.md) when the VMs run under
    QEMU's TCG, where a busy core stalls a guest for seconds; `default` on KVM."""
    return "emulated" if run_env["HALB_VAGRANT_LIBVIRT_DRIVER"] == "qemu" else "default"


def tb_size(env: Mapping[str, str]) -> int:
    text = env.get("HALB_VAGRANT_TB_SIZE", "").strip()
    if not text:
        return vm_ns.TB_SIZE_MIB
    if not text.isascii() or not text.isdigit() or not 32 <= int(text) <= 2048:
        raise InputError(f"HALB_VAGRANT_TB_SIZE={text!r}: give MiB from 32 to 2048")
    return int(text)


# --- effects -----------------------------------------------------------------------------


class _Watch:
    """Progress a person can follow: each vagrant line with the time since the start, and
    every HEARTBEAT seconds each VM's last step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.t0 = time.monotonic()
        self.last: dict[str, str] = {}
        self.done = threading.Event()

    def line(self, text: str) -> None:
        if text.startswith("==> ") and ": " in text:
            vm, _, what = text[4:].partition(": ")
            if what.startswith(" ") or not what[:1].isupper():
                return  # a domain setting or a wrapped warning: in the log only
            self.last[vm] = what
        self.progress(f"[{time.monotonic() - self.t0:5.0f} s] {text}")

    def where(self, consoles: Path) -> str:
        """Each VM's last step and its console log, for a failure message."""
        if not self.last:
            return f"; consoles in {consoles}"
        each = "; ".join(
            f"{vm} at {step!r}, console {consoles / (vm + '.log')}"
            for vm, step in sorted(self.last.items())
        )
        return f"; {each}"

    def beat(self) -> None:
        while not self.done.wait(HEARTBEAT):
            states = "; ".join(f"{vm}: {w}" for vm, w in sorted(self.last.items()))
            self.progress(f"[{time.monotonic() - self.t0:5.0f} s] {states or 'starting'}")


def up(
    lab_dir: Path,
    vagrant_dir: Path | None,
    sizes: Sizes,
    timeout: float,
    progress: Progress,
    env: Mapping[str, str] | None = None,
) -> Layout:
    base = dict(os.environ if env is None else env)
    check_env({**base, **sizes.env()})
    vagrant_run.check_lab_dir(lab_dir)
    if vagrant_run.read_state(lab_dir):
        raise InputError(
            f"{lab_dir} holds a VM lab already: `halb lab down --provider vagrant --dir "
            f"{lab_dir}` first"
        )
    vdir = vagrant_run.resolve_vagrant_dir(lab_dir, vagrant_dir)
    tb = tb_size(base)
    ns = vm_ns.VmNs.of(lab_dir)  # refuses a folder it cannot use, before making it
    lab_dir.mkdir(parents=True, exist_ok=True)
    d = lab_dir.resolve()
    consoles = d / CONSOLES_DIR
    state = {"netns": ns.name, **sizes.env()}
    # Recorded first: `lab down` after a killed `up` finds what to remove.
    vagrant_run.write_state(d, vdir, state)
    watch = _Watch(progress)
    beat = threading.Thread(target=watch.beat, daemon=True)
    try:
        box = ensure_box(progress)
        vm_ns.start(ns, progress, tb)
        vm_ns.serve_repo(ns, box.repo)
        consoles.mkdir(exist_ok=True)
        run_env = lab_env(ns, consoles, box, sizes, base)
        progress(
            f"{sizes.lbs} LB, {sizes.masters} master, {sizes.nodes} node VMs "
            f"({run_env['HALB_VAGRANT_LIBVIRT_DRIVER']}); consoles in {consoles}"
        )
        beat.start()
        try:
            return vagrant_run.up(
                d, vdir, timeout, watch.line, run_env,
                wrap=[*ns.enter_argv(vdir), "nice", "-n", "19"], state=state,
                reaches_vips=True, profile=vrrp_profile(run_env),
            )  # fmt: skip
        except VagrantError as e:
            raise VagrantError(f"{e}{watch.where(consoles)}") from None
    except BaseException as e:
        watch.done.set()
        # Nothing half-up stays: the VMs, libvirtd and the netns go; the logs stay.
        progress("taking down what was made (logs kept)")
        try:
            vm_ns.stop(ns, progress)
        except HalbError as stop_error:
            progress(f"while taking it down: {stop_error}")
        raise e
    finally:
        watch.done.set()


def status(lab_dir: Path, vagrant_dir: Path | None) -> list[VmState]:
    recorded = vagrant_run.read_state(lab_dir)
    counts = {k: recorded.get(k, v) for k, v in Sizes().env().items()}
    try:
        check_env(counts)
    except InputError as e:
        raise InputError(f"{lab_dir / vagrant_run.STATE_FILE}: {e}") from None
    sizes = Sizes(*(int(v) for v in counts.values()))
    ns = vm_ns.VmNs.of(lab_dir)
    if ns.libvirtd_pid() is None:
        return []
    box = vm_box.BoxPaths.of(vm_box.CACHE_DIR, vm_box.recipe_key())
    env = lab_env(ns, lab_dir.resolve() / CONSOLES_DIR, box, sizes, dict(os.environ))
    vdir = vagrant_run.resolve_vagrant_dir(lab_dir, vagrant_dir)
    return vagrant_run.status(lab_dir, vdir, env, wrap=ns.enter_argv(vdir))


def down(lab_dir: Path, progress: Progress) -> list[str]:
    """VMs, networks, repository, libvirtd, netns and mounts, then the lab's files. libvirt
    removes the VMs and their disks; Vagrant's records of them live in the lab's state."""
    ns = vm_ns.VmNs.of(lab_dir)
    done = vm_ns.stop(ns, progress)
    shutil.rmtree(lab_dir / CONSOLES_DIR, ignore_errors=True)
    removed = vagrant_run.remove_files(lab_dir)
    if removed:
        done.append(f"removed {removed} files from {lab_dir}")
        progress(done[-1])
    return done


def exec_argv(lab_dir: Path) -> list[str]:
    """A command in the lab's view: its netns (the VMs' networks) and mounts."""
    if not is_isolated(lab_dir):
        raise InputError(f"{lab_dir}: no VM lab of halb's namespaces here (`halb lab up`)")
    return vm_ns.VmNs.of(lab_dir).enter_argv(Path.cwd())
