"""The VM lab's Debian box, pure part: its recipe, the key that names a build, where it lives.

    key = recipe_key()                    # changes whenever the recipe changes
    paths = BoxPaths.of(CACHE_DIR, key)   # the box file, its package repository
    mirror = mirror_from_sources(texts)   # the Debian mirror apt already uses

The box is Debian 12 made with `mmdebstrap` (systemd, sshd, sudo, python3, the cloud
kernel; user `vagrant` with Vagrant's insecure key), a partition-less ext4 image as qcow2
booted with the kernel and initrd shipped beside it (libvirt direct kernel boot). With it
comes a package repository of the .deb files that haproxy and keepalived need on top of
the box, which the lab serves to its VMs (they reach no mirror).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path("/var/cache/halb-lab")
SUITE = "bookworm"
BOX_PREFIX = "halb-lab/debian12"
BOX_FILE = "halb-debian12.box"
REPO_DIR = "repo"
# Bumped when the build steps below (image, box files) change in a way the text misses.
FORMAT = 1
IMAGE_SIZE = "3G"

INCLUDE = (
    "systemd-sysv", "udev", "dbus", "openssh-server", "sudo", "iproute2", "iputils-ping",
    "python3", "openssl", "curl", "ca-certificates", "linux-image-cloud-amd64",
    "initramfs-tools", "e2fsprogs", "netbase", "procps", "kmod",
)  # fmt: skip
# What `halb deploy` installs on LB hosts: downloaded with everything it needs beyond the box.
REPO_PACKAGES = ("haproxy", "keepalived")
# Units a lab VM never needs, masked so a TCG boot does not wait for them (e2scrub_reap
# alone costs about 30 s there).
MASKED = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
    "fstrim.timer", "man-db.timer", "systemd-networkd-wait-online.service",
)  # fmt: skip

# mmdebstrap runs each hook with the root as $1; HALB_BOX_KEY and HALB_BOX_REPO come from
# the environment, so no path is ever written into a hook's text.
HOOKS = (
    'chroot "$1" useradd -m -s /bin/bash -G sudo vagrant',
    'echo vagrant:vagrant | chroot "$1" chpasswd',
    'echo "vagrant ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/vagrant"; '
    'chmod 440 "$1/etc/sudoers.d/vagrant"',
    'install -d -m 700 "$1/home/vagrant/.ssh"; '
    'install -m 600 "$HALB_BOX_KEY" "$1/home/vagrant/.ssh/authorized_keys"; '
    'chroot "$1" chown -R vagrant:vagrant /home/vagrant/.ssh',
    'echo "/dev/vda / ext4 defaults,noatime 0 1" > "$1/etc/fstab"',
    'printf "[Match]\\nName=eth0\\n[Network]\\nDHCP=ipv4\\n[DHCPv4]\\nClientIdentifier=mac\\n"'
    ' > "$1/etc/systemd/network/90-eth0-dhcp.network"',
    'chroot "$1" systemctl enable systemd-networkd ssh',
    'printf "UseDNS no\\nGSSAPIAuthentication no\\n" > "$1/etc/ssh/sshd_config.d/lab.conf"',
    'echo debian12 > "$1/etc/hostname"; '
    'printf "127.0.0.1 localhost\\n127.0.1.1 debian12\\n" > "$1/etc/hosts"',
    ': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"',
    'chroot "$1" systemctl mask ' + " ".join(MASKED),
    # systemd-only VMs never read SysV links; keeping them (update-rc.d, perl) made
    # `systemctl enable keepalived` take over 60 s under TCG on busy cores.
    'chroot "$1" dpkg-divert --local --rename --add /lib/systemd/systemd-sysv-install; '
    'ln -s /bin/true "$1/lib/systemd/systemd-sysv-install"',
    # Only what the box lacks: the archive cache is emptied of the box's own packages first.
    'rm -f "$1"/var/cache/apt/archives/*.deb; '
    'chroot "$1" apt-get install -y -q --download-only ' + " ".join(REPO_PACKAGES),
    'cp "$1"/var/cache/apt/archives/*.deb "$HALB_BOX_REPO"/',
    'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
)

KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0 quiet mitigations=off"
# The box's own Vagrantfile: libvirt boots the kernel and initrd shipped in the box.
BOX_VAGRANTFILE = f"""\
# halb's lab box: libvirt boots the kernel and initrd shipped beside the image.
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |lv|
    boxdir = File.dirname(__FILE__)
    lv.kernel = File.join(boxdir, "vmlinuz")
    lv.initrd = File.join(boxdir, "initrd.img")
    lv.cmd_line = "{KERNEL_CMDLINE}"
    lv.disk_bus = "virtio"
  end
end
"""


def recipe_key() -> str:
    """12 hex digits naming this recipe: a changed package, hook or box file, a new box."""
    doc = {
        "format": FORMAT,
        "suite": SUITE,
        "include": INCLUDE,
        "hooks": HOOKS,
        "repo": REPO_PACKAGES,
        "size": IMAGE_SIZE,
        "vagrantfile": BOX_VAGRANTFILE,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def box_name(key: str) -> str:
    return f"{BOX_PREFIX}-{key}"


def metadata(virtual_size_gib: int) -> str:
    return json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": virtual_size_gib})


@dataclass(frozen=True)
class BoxPaths:
    dir: Path  # one folder per recipe key; it exists only once complete

    @classmethod
    def of(cls, cache: Path, key: str) -> BoxPaths:
        return cls(cache / "box" / key)

    @property
    def box(self) -> Path:
        return self.dir / BOX_FILE

    @property
    def repo(self) -> Path:
        return self.dir / REPO_DIR

    @property
    def vagrant_home(self) -> Path:
        # Vagrant's own store (the added box): shared by every lab, under the cache.
        return self.dir.parent.parent / "vagrant.d"


_DEB_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(https?://\S+)\s+(\S+)", re.MULTILINE)


def mirror_from_sources(texts: Iterable[tuple[str, str]]) -> str | None:
    """The first Debian mirror apt uses for the suite, from (file name, text) pairs of
    sources.list (one-line) and *.sources (deb822) files; the security archive is not one."""
    for name, text in texts:
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822(stanza)
                suites = fields.get("suites", "").split()
                if "deb" in fields.get("types", "").split() and SUITE in suites:
                    for uri in fields.get("uris", "").split():
                        if uri.startswith(("http://", "https://")):
                            return uri
        else:
            for m in _DEB_LINE.finditer(text):
                if m.group(2) == SUITE:
                    return m.group(1)
    return None


def _deb822(stanza: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        k, _, v = line.partition(":")
        out[k.strip().lower()] = v.strip()
    return out
