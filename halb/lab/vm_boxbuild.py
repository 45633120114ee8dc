"""The VM lab's box, effects: build it once per recipe into the cache, add it to Vagrant.

    paths = ensure_box(progress)     # built (about 2 minutes) or found; added to Vagrant

A build works in a staging folder next to the final one and renames it when complete,
under a lock, so a killed build leaves nothing that looks like a box.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from halb.errors import HalbError
from halb.lab import vm_box
from halb.lab.model import Progress
from halb.lab.vm_box import BoxPaths

BUILD_TIMEOUT = 1800.0  # mmdebstrap from the mirror, then image and repository
ADD_TIMEOUT = 600.0
BUILD_LOG = "build.log"
INSECURE_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
    "dpkg-scanpackages": "dpkg-dev",
    "vagrant": "vagrant",
}


class BoxError(HalbError):
    pass


def _quiet(_: str) -> None:
    pass


# $1 root, $2 staging dir, $3 mirror, $4 image size, then mmdebstrap's arguments.
# Every value is an argument; the hooks read HALB_BOX_KEY and HALB_BOX_REPO.
BUILD_SH = r"""
set -eu
root=$1; stage=$2; mirror=$3; size=$4; shift 4
mkdir -p "$HALB_BOX_REPO"
nice -n 19 mmdebstrap --variant=apt "$@" bookworm "$root" "$mirror"
cp -L "$root"/boot/vmlinuz-* "$stage/vmlinuz"
cp -L "$root"/boot/initrd.img-* "$stage/initrd.img"
nice -n 19 mkfs.ext4 -q -L root -d "$root" "$stage/root.raw" "$size"
rm -rf "$root"
nice -n 19 qemu-img convert -c -O qcow2 "$stage/root.raw" "$stage/box.img"
rm -f "$stage/root.raw"
(cd "$HALB_BOX_REPO" && dpkg-scanpackages -m . /dev/null > Packages 2>/dev/null)
"""


def check_tools() -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise BoxError(
            f"the VM lab needs {', '.join(missing)}: `make vm-debs` (or apt-get install "
            f"{' '.join(missing)})"
        )


def insecure_key() -> Path:
    found = sorted(glob.glob(INSECURE_KEY_GLOB))
    if not found:
        raise BoxError(f"Vagrant's insecure public key is not at {INSECURE_KEY_GLOB}")
    return Path(found[-1])


def find_mirror() -> str:
    given = os.environ.get("HALB_BOX_MIRROR", "").strip()
    if given:
        return given
    texts: list[tuple[str, str]] = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.is_file() and p.name.endswith((".list", ".sources")):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                texts.append((p.name, p.read_text()))
    mirror = vm_box.mirror_from_sources(texts)
    if mirror is None:
        raise BoxError(
            "no Debian bookworm mirror in /etc/apt/sources.list{,.d}: set HALB_BOX_MIRROR"
        )
    return mirror


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / "box.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another lab building the same box: wait for it
        yield
    finally:
        os.close(fd)


def ensure_box(
    progress: Progress = _quiet, cache: Path = vm_box.CACHE_DIR, rebuild: bool = False
) -> BoxPaths:
    """The box of the current recipe, built if the cache lacks it, added to Vagrant."""
    check_tools()
    key = vm_box.recipe_key()
    paths = BoxPaths.of(cache, key)
    with _locked(cache):
        if rebuild and paths.dir.exists():
            shutil.rmtree(paths.dir)
        if not paths.box.is_file():
            _build(paths, progress)
        else:
            progress(f"box {vm_box.box_name(key)}: cached in {paths.dir}")
        _add_to_vagrant(paths, key, progress)
        _remove_old(cache, key)
    return paths


def _build(paths: BoxPaths, progress: Progress) -> None:
    stage = paths.dir.with_name(paths.dir.name + ".building")
    if stage.exists():
        shutil.rmtree(stage)  # a killed build's leftovers
    stage.mkdir(parents=True)
    root = stage / "rootfs"
    log = stage.parent / f"{paths.dir.name}.{BUILD_LOG}"
    mirror = find_mirror()
    progress(f"building the lab box from {mirror} (about 2-5 minutes); log in {log}")
    t0 = time.monotonic()
    args = ["--include=" + ",".join(vm_box.INCLUDE)]
    args += [f"--customize-hook={h}" for h in vm_box.HOOKS]
    env = {
        **os.environ,
        "HALB_BOX_KEY": str(insecure_key()),
        "HALB_BOX_REPO": str(stage / vm_box.REPO_DIR),
    }
    argv = ["sh", "-c", BUILD_SH, "build", str(root), str(stage), mirror, vm_box.IMAGE_SIZE]
    with open(log, "w") as logf:
        try:
            rc = subprocess.run(
                [*argv, *args], stdout=logf, stderr=subprocess.STDOUT, env=env,
                timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            rc = -1
    if rc != 0:
        shutil.rmtree(stage, ignore_errors=True)
        raise BoxError(f"building the lab box failed (exit {rc}): see {log}")
    try:
        _pack(stage)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise BoxError(f"packing the lab box failed: {e}") from None
    os.rename(stage, paths.dir)
    mib = paths.box.stat().st_size >> 20
    progress(f"box built in {time.monotonic() - t0:.0f} s ({mib} MiB): {paths.box}")


def _pack(stage: Path) -> None:
    """metadata.json, the box's Vagrantfile, the image, kernel and initrd: the .box file."""
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(stage / "box.img")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    size = json.loads(info.stdout)["virtual-size"]
    (stage / "metadata.json").write_text(vm_box.metadata(-(-size // (1 << 30))) + "\n")
    (stage / "Vagrantfile").write_text(vm_box.BOX_VAGRANTFILE)
    part = stage / (vm_box.BOX_FILE + ".part")
    members = ["metadata.json", "Vagrantfile", "box.img", "vmlinuz", "initrd.img"]
    subprocess.run(["tar", "-C", str(stage), "-cf", str(part), *members], check=True, timeout=600)
    os.rename(part, stage / vm_box.BOX_FILE)
    for f in members:
        (stage / f).unlink()


def _add_to_vagrant(paths: BoxPaths, key: str, progress: Progress) -> None:
    name = vm_box.box_name(key)
    env = {**os.environ, "VAGRANT_HOME": str(paths.vagrant_home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    listed = subprocess.run(
        ["vagrant", "box", "list", "--machine-readable"],
        capture_output=True, text=True, env=env, timeout=ADD_TIMEOUT, cwd="/",
    )  # fmt: skip
    if f",box-name,{name}\n" in listed.stdout + "\n":
        return
    progress(f"adding box {name} to Vagrant ({paths.vagrant_home})")
    r = subprocess.run(
        ["vagrant", "box", "add", "--force", "--name", name, str(paths.box)],
        capture_output=True, text=True, env=env, timeout=ADD_TIMEOUT, cwd="/",
    )  # fmt: skip
    if r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()
        raise BoxError(f"vagrant box add {name} failed: {last[-1] if last else r.returncode}")


def _remove_old(cache: Path, key: str) -> None:
    """Boxes of older recipes go, from the cache and from Vagrant's store: each is a few
    hundred MiB."""
    for d in (cache / "box").iterdir():
        if d.is_dir() and d.name != key and not d.name.endswith(".building"):
            shutil.rmtree(d, ignore_errors=True)
        elif d.name.endswith(BUILD_LOG) and not d.name.startswith(key):
            d.unlink(missing_ok=True)
    stored = BoxPaths.of(cache, key).vagrant_home / "boxes"
    ours = vm_box.box_name(key).replace("/", "-VAGRANTSLASH-")
    prefix = vm_box.BOX_PREFIX.replace("/", "-VAGRANTSLASH-") + "-"
    if stored.is_dir():
        for d in stored.iterdir():
            if d.name.startswith(prefix) and d.name != ours:
                shutil.rmtree(d, ignore_errors=True)
