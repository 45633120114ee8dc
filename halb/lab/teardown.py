"""Take a lab down: its processes, mounts, namespaces and files. Works from namespace
names and /proc when lab.json is gone; safe to run twice."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from halb.errors import InputError
from halb.lab import netns, sdhost
from halb.lab.model import COMMON_YAML, LAB_FILES, MARKER, STATE_DIR, STATE_FILE, load
from halb.lab.netns import require_root
from halb.lab.standin import remove_lab_installer
from halb.lab.topology import SWITCH, check_name, lab_of_netns


def _lab_mounts(name: str, lab_dir: Path | None) -> list[str]:
    """Mounts made for lab `name`: its namespace files, wherever they are, its state dir
    and everything mounted under it (the systemd hosts' base layer)."""
    targets = []
    states = {str(lab_dir / STATE_DIR)} if lab_dir else set()
    all_mounts = netns.mounts()
    for m in all_mounts:
        base = os.path.basename(m.target)
        if base.startswith(f"halb-{name}-") and base.endswith((".mnt", ".uts")):
            targets.append(m.target)
            # .../state/ns/halb-NAME-HOST.mnt -> .../state (the private bind)
            states.add(os.path.dirname(os.path.dirname(m.target)))
    for m in all_mounts:
        if any(m.target == s or m.target.startswith(s + "/") for s in states):
            targets.append(m.target)
    mounted = {m.target for m in all_mounts}
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
    inits = [pid for ns in nss if (pid := netns.init_pid(ns)) is not None]
    if inits:
        # systemd stops what it runs and unmounts the host's root itself
        left = sdhost.halt(inits)
        done.append(f"halted {len(inits) - len(left)} systemd hosts")
        if left:
            done.append(f"{len(left)} systemd hosts did not halt in {sdhost.HALT_WAIT:g} s")
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
    cgroups = sdhost.remove_cgroups(name)
    if cgroups:
        done.append(f"removed {cgroups} cgroups")
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
    remove_lab_installer(lab_dir)
    with contextlib.suppress(OSError):
        (lab_dir / COMMON_YAML).parent.rmdir()
    with contextlib.suppress(OSError):
        lab_dir.rmdir()  # only when empty
    return count
