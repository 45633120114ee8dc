"""A hostile corpus through `halb write-config`, end to end through the real CLI.

Every case: exit 0 or 2, never a traceback; on exit 2 exactly one line on stderr of bounded
length naming the file, and the folder byte for byte as it was; on exit 0 only LB lines
changed, one backup, no temp file left, and a second run finds nothing to do.
"""

from __future__ import annotations

import difflib
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from halb.cli import app
from halb.cli.common import MAX_LINE

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
runner = CliRunner()
VIP = "10.77.0.253"
LB_WORDS = (
    "address",
    "port",
    "apiserver_loadbalancer_domain_name",
    "loadbalancer_apiserver",
    "supplementary_addresses_in_ssl_keys",
    "controlPlaneEndpoint",
    "apiserverCertExtraSans",
    "kubernetes:",
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def bomb() -> bytes:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        p, c = chr(96 + i), chr(97 + i)
        lines.append(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]")
    return "\n".join(lines).encode() + b"\n"


KS = fixture("kubesphere-common.yaml")
SPRAY = fixture("kubespray-all.yml")
KK = fixture("kubekey-cluster.yaml")
LB = b"loadbalancer_apiserver:\n  address: 1.2.3.4\n  port: 6443\n"

# name -> (file content, --installer or None)
CONTENT: dict[str, tuple[bytes, str | None]] = {
    "empty": (b"", "kubespray"),
    "only-comments": (b"# nothing\n# here\n", "kubespray"),
    "only-document-marker": (b"---\n", "kubespray"),
    "null": (b"~\n", "kubespray"),
    "top-level-list": (b"- a\n- b\n", "kubespray"),
    "top-level-scalar": (b"just text\n", "kubespray"),
    "two-documents": (b"a: 1\n---\nb: 2\n", "kubespray"),
    "tab-indent": (b"a:\n\tb: 1\n", "kubespray"),
    "unclosed-flow": (b"a: [1, 2\n", "kubespray"),
    "unclosed-quote": (b'a: "open\n', "kubespray"),
    "binary": (bytes(range(256)) * 4, "kubespray"),
    "nul": (b"a: 1\n\x00\n", "kubespray"),
    "latin-1": ("a: café\n".encode("latin-1"), "kubespray"),
    "utf-16": ("a: 1\n".encode("utf-16"), "kubespray"),
    "bom-crlf": (b"\xef\xbb\xbf" + SPRAY.replace(b"\n", b"\r\n"), None),
    "crlf-kubesphere": (KS.replace(b"\n", b"\r\n"), None),
    "crlf-kubekey": (KK.replace(b"\n", b"\r\n"), None),
    "cr-only": (b"a: 1\rloadbalancer_apiserver:\r  address: 1.2.3.4\r  port: 1\r", "kubespray"),
    "mixed-endings": (b"a: 1\r\nb: 2\nloadbalancer_apiserver:\r\n  port: 1\n", "kubespray"),
    "no-final-newline": (SPRAY.rstrip(b"\n"), None),
    "line-separator-in-comment": ("# a\u2028b\na: 1\n".encode(), "kubespray"),
    "nel-in-comment": ("# a\x85b\na: 1\n".encode(), "kubespray"),
    "escape-in-comment": (b"# \x1b[2J\na: 1\n", "kubespray"),
    "huge-value": (b"a: " + b"x" * 400_000 + b"\n", "kubespray"),
    "too-big": (b"a: 1\n" + b"#" * 600_000 + b"\n", "kubespray"),
    "many-keys": (b"".join(b"k%d: %d\n" % (i, i) for i in range(3000)), "kubespray"),
    "alias-bomb": (bomb(), "kubespray"),
    "deep-flow": (b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", "kubespray"),
    "deep-flow-map": (b"a: " + b"{b: " * 3000 + b"1" + b"}" * 3000 + b"\n", "kubespray"),
    "deep-block": (b"".join(b" " * i + b"k:\n" for i in range(300)), "kubespray"),
    "recursive-alias": (b"a: &a [1, *a]\n", "kubespray"),
    "undefined-alias": (b"a: *nope\n", "kubespray"),
    "merge-into-lb": (
        b"b: &b\n  address: 1.2.3.4\n  port: 1\nloadbalancer_apiserver:\n  <<: *b\n",
        None,
    ),
    "merge-beside-lb": (
        b"b: &b {port: 1}\nloadbalancer_apiserver:\n  address: x\n  <<: *b\n",
        None,
    ),
    "merge-top-level": (b"b: &b\n  loadbalancer_apiserver: {address: x, port: 1}\n<<: *b\n", None),
    "merge-top-domain": (b"b: &b\n  apiserver_loadbalancer_domain_name: x\n<<: *b", None),
    "merge-sans": (b"b: &b\n  supplementary_addresses_in_ssl_keys: [x]\n<<: *b\n", None),
    "merge-list-of-maps": (b"a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n", "kubespray"),
    "merge-elsewhere": (b"d: &d {x: 1}\nother:\n  <<: *d\n" + LB, "kubespray"),
    "lb-is-alias": (b"x: &x\n  address: 1.2.3.4\n  port: 1\nloadbalancer_apiserver: *x\n", None),
    "sans-is-alias": (b"x: &x [a, b]\nsupplementary_addresses_in_ssl_keys: *x\n", "kubespray"),
    "lb-anchor-unused": (b"loadbalancer_apiserver: &x\n  address: 1.2.3.4\n", "kubespray"),
    "lb-is-list": (b"loadbalancer_apiserver: [1, 2]\n", "kubespray"),
    "lb-is-scalar": (b"loadbalancer_apiserver: yes\n", "kubespray"),
    "lb-flow-missing-port": (b"loadbalancer_apiserver: {address: 1.2.3.4}\n", "kubespray"),
    "lb-flow-complete": (b"loadbalancer_apiserver: {address: 1.2.3.4, port: 1}\n", "kubespray"),
    "lb-empty-last-line": (b"a: 1\nloadbalancer_apiserver:", "kubespray"),
    "lb-address-empty-last": (b"loadbalancer_apiserver:\n  address:", "kubespray"),
    "lb-port-empty-comment": (b"loadbalancer_apiserver:\n  port:   # here", "kubespray"),
    "lb-address-null": (b"loadbalancer_apiserver:\n  address: null\n  port: ~\n", "kubespray"),
    "lb-address-on-next-line": (b"loadbalancer_apiserver:\n  address:\n    1.2.3.4\n", "kubespray"),
    "lb-address-block-scalar": (
        b"loadbalancer_apiserver:\n  address: |\n    1.2.3.4\n",
        "kubespray",
    ),
    "lb-address-folded": (b"loadbalancer_apiserver:\n  address: >-\n    1.2.3.4\n", "kubespray"),
    "lb-address-multiline-quoted": (
        b'loadbalancer_apiserver:\n  address: "1.2.\n    3.4"\n',
        "kubespray",
    ),
    "lb-address-escaped": (b'loadbalancer_apiserver:\n  address: "\\x31.2.3.4"\n', "kubespray"),
    "lb-address-tagged": (b"loadbalancer_apiserver:\n  address: !!str 1.2.3.4\n", "kubespray"),
    "lb-custom-tag": (b"loadbalancer_apiserver: !vault |\n  $ANSIBLE_VAULT;1.1\n", "kubespray"),
    "lb-binary-tag": (b"loadbalancer_apiserver: !!binary aGVsbG8=\n", "kubespray"),
    "lb-address-hostile": (b'loadbalancer_apiserver:\n  address: "a\\nb:x:[bold]"\n', "kubespray"),
    "lb-port-text": (b"loadbalancer_apiserver:\n  port: 'six'\n", "kubespray"),
    "lb-tabs-and-spaces": (
        b"loadbalancer_apiserver:\n  address: 1.2.3.4 \t \n  port: 1\t\n",
        "kubespray",
    ),
    "duplicate-keys": (b"a: 1\na: 2\n", "kubespray"),
    "duplicate-lb": (LB + LB, "kubespray"),
    "complex-key": (b"? [a, b]\n: 1\n", "kubespray"),
    "int-and-bool-keys": (b"1: a\ntrue: b\nnull: c\n", "kubespray"),
    "sans-mapping": (b"supplementary_addresses_in_ssl_keys: {a: 1}\n", "kubespray"),
    "sans-nested": (b"supplementary_addresses_in_ssl_keys:\n  - [a]\n", "kubespray"),
    "sans-flow-multiline": (b"supplementary_addresses_in_ssl_keys: [a,\n  b]\n", "kubespray"),
    "sans-odd-indent": (b"supplementary_addresses_in_ssl_keys:\n-    a\n-    b\n", "kubespray"),
    "directives": (b"%YAML 1.2\n---\na: 1\n", "kubespray"),
    "yaml-1.1-directive": (b"%YAML 1.1\n---\na: 1\n", "kubespray"),
    "kk-other-kind": (b"apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Other\nspec: {}\n", None),
    "kk-no-spec": (b"apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\n", None),
    "kk-flow-spec": (
        b"apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\nspec: {a: 1}\n",
        None,
    ),
    "kk-spec-list": (
        b"apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\nspec: [1]\n",
        None,
    ),
    "kk-cpe-flow": (
        KK.replace(b"  controlPlaneEndpoint:\n", b"  controlPlaneEndpoint: {}\n  x:\n"),
        None,
    ),
    "kk-cpe-empty": (
        b"apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\nspec:\n"
        b"  controlPlaneEndpoint:\n  kubernetes:",
        None,
    ),
    "kk-sans-scalar": (
        KK.replace(b"apiserverCertExtraSans:  \n", b"apiserverCertExtraSans: x\n#"),
        None,
    ),
    "kk-as-kubespray": (KK, "kubespray"),
    "kubesphere-as-kubekey": (KS, "kubekey"),
    "other-k8s-object": (b"apiVersion: v1\nkind: ConfigMap\ndata: {}\n", None),
    "ks-installer-cc": (
        b"apiVersion: installer.kubesphere.io/v1alpha1\nkind: ClusterConfiguration\n",
        None,
    ),
    "markup-and-emoji-values": (b'a: ":x: [bold]b[/] [begin:end:step]"\n' + LB, "kubespray"),
    "installer-markup": (SPRAY, ":x:[bold]"),
    "installer-newline": (SPRAY, "kube\nspray"),
    "installer-megabyte": (SPRAY, "k" * 1_000_000),
}


@dataclass(frozen=True)
class Target:
    """A target that is not a plain file: made in `folder`, named `name`."""

    make: Callable[[Path], Path]


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "fifo.yml")
    return folder / "fifo.yml"


def _socket(folder: Path) -> Path:
    path = folder / "sock.yml"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return path


def _dir(folder: Path) -> Path:
    (folder / "dir.yml").mkdir()
    return folder / "dir.yml"


def _dangling(folder: Path) -> Path:
    (folder / "link.yml").symlink_to(folder / "nowhere.yml")
    return folder / "link.yml"


def _loop(folder: Path) -> Path:
    (folder / "loop.yml").symlink_to(folder / "loop.yml")
    return folder / "loop.yml"


def _read_only(folder: Path) -> Path:
    path = folder / "ro.yml"
    path.write_bytes(SPRAY)
    path.chmod(0o444)
    return path


def _read_only_folder(folder: Path) -> Path:
    sub = folder / "ro"
    sub.mkdir()
    (sub / "all.yml").write_bytes(SPRAY)
    sub.chmod(0o555)
    return sub / "all.yml"


def _unreadable(folder: Path) -> Path:
    path = folder / "secret.yml"
    path.write_bytes(SPRAY)
    path.chmod(0o000)  # root reads it anyway; then it is refused as read-only
    return path


def _too_long(folder: Path) -> Path:
    path = folder / ("n" * 240 + ".yml")
    path.write_bytes(SPRAY)
    return path


TARGETS: dict[str, Callable[[Path], Path]] = {
    "fifo": _fifo,
    "socket": _socket,
    "directory": _dir,
    "dangling-symlink": _dangling,
    "symlink-loop": _loop,
    "read-only-file": _read_only,
    "read-only-folder": _read_only_folder,
    "unreadable-file": _unreadable,
    "missing": lambda folder: folder / "missing.yml",
    "missing-folder": lambda folder: folder / "no" / "such" / "all.yml",
    "dev-zero": lambda folder: Path("/dev/zero"),
    "dev-null": lambda folder: Path("/dev/null"),
    "markup-name": lambda folder: folder / ":x:[bold]x[|bold][begin:end:step].yml",
    "newline-name": lambda folder: folder / "a\nerror: forged.yml",
    "long-name": lambda folder: folder / ("n" * 200 + ".yml"),
    "name-too-long-for-a-backup": _too_long,
}


def snapshot(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = f"-> {os.readlink(p)}"
        elif p.is_file() and os.access(p, os.R_OK):
            out[rel] = p.read_bytes()
        else:
            out[rel] = "special"
    return out


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "cluster").mkdir()
    shutil.copy(FIXTURES / "hosts.ini", tmp_path / "cluster" / "hosts.ini")
    path = tmp_path / "cluster" / "halb.yaml"
    path.write_text(
        "cluster: test-ha\ninventory: hosts.ini\n"
        f"vips:\n  internal: {{address: {VIP}, interface: eth0}}\n"
        "  external: {address: 10.77.0.254, interface: eth0}\n"
    )
    return path


def run(spec: Path, target: Path, installer: str | None) -> Result:
    args = ["write-config", "-c", str(spec), str(target)]
    if installer is not None:
        args += ["--installer", installer]
    return runner.invoke(app, args)


def check_outcome(r: Result) -> None:
    assert r.exit_code in (0, 2), (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    for line in r.stderr.splitlines():
        assert len(line) <= MAX_LINE + 80, len(line)
    if r.exit_code == 2:
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


def check_refused(r: Result, folder: Path, before: dict[str, bytes | str], name: str) -> None:
    assert snapshot(folder) == before
    shown = name.encode("unicode_escape").decode()[:100]
    assert shown in r.stderr or name in r.stderr, r.stderr


def check_written(
    r: Result, spec: Path, target: Path, before: dict[str, bytes | str], installer: str | None
) -> None:
    folder = target.parent
    after = snapshot(folder)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and ".halb-bak-" in new[0], new  # one backup, no temp file
    assert after[new[0]] == before[target.name]
    old_text = before[target.name]
    assert isinstance(old_text, bytes)
    new_text = target.read_bytes()
    assert VIP.encode() in new_text
    old_lines = old_text.decode("utf-8-sig").splitlines(keepends=True)
    new_lines = new_text.decode("utf-8-sig").splitlines(keepends=True)
    removed = [
        line
        for op, a0, a1, _b0, _b1 in difflib.SequenceMatcher(
            a=old_lines, b=new_lines, autojunk=False
        ).get_opcodes()
        if op in ("replace", "delete")
        for line in old_lines[a0:a1]
    ]
    for line in removed:  # a line without a final newline gains none; others: LB lines only
        assert any(w in line for w in LB_WORDS) or line == old_lines[-1], line
    again = run(spec, target, installer)
    assert again.exit_code == 0 and "unchanged" in again.stdout, again.output
    assert target.read_bytes() == new_text


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(CONTENT))
def test_hostile_content(tmp_path: Path, spec: Path, case: str) -> None:
    data, installer = CONTENT[case]
    folder = tmp_path / "work"
    folder.mkdir()
    target = folder / "all.yml"
    target.write_bytes(data)
    before = snapshot(folder)
    r = run(spec, target, installer)
    check_outcome(r)
    if r.exit_code == 2:
        check_refused(
            r, folder, before, "--installer" if case.startswith("installer") else "all.yml"
        )
    else:
        check_written(r, spec, target, before, installer)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(TARGETS))
def test_hostile_targets(tmp_path: Path, spec: Path, case: str) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    target = TARGETS[case](folder)
    before = snapshot(folder)
    try:
        r = run(spec, target, "kubespray")
        check_outcome(r)
        if case in ("markup-name", "long-name"):  # refused while missing, edited once there
            target.write_bytes(SPRAY)
            before = snapshot(folder)
            r = run(spec, target, "kubespray")
            check_outcome(r)
            assert r.exit_code == 0 and str(target) in r.stdout, r.output
            check_written(r, spec, target, before, "kubespray")
            return
        assert r.exit_code == 2, r.output
        check_refused(r, folder, before, target.name)
    finally:
        for p in folder.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
