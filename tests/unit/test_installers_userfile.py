"""write_config keeps a user's file as the user had it, and refuses hostile files cleanly.

Line endings, a missing final newline, a byte-order mark, mode and owner survive; only the
LB keys' lines change. Devices, FIFOs, huge, binary and non-UTF-8 files, YAML bombs, merge
keys and read-only files are refused with an InputError naming the file, nothing changed.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from halb.errors import InputError
from halb.installers import LBSettings, write_config
from halb.installers.limits import MAX_CONFIG_BYTES, MAX_DEPTH

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
SETTINGS = LBSettings("192.168.0.253", 8443, "lb.kubesphere.local", ("192.168.0.254",))
NOW = datetime(2024, 5, 6, 7, 8, 9)
CASES = [
    ("kubesphere", "kubesphere-common.yaml"),
    ("kubespray", "kubespray-all.yml"),
    ("kubekey", "kubekey-cluster.yaml"),
]
LB_WORDS = ("address", "port", "apiserver_loadbalancer_domain_name", "loadbalancer_apiserver")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(kind: str, path: Path, match: str) -> None:
    """write_config raises an InputError naming the file, and the folder is unchanged."""
    folder = path.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_fifo()}
    names = listing(folder)
    with pytest.raises(InputError, match=match) as info:
        write_config(kind, path, SETTINGS, now=NOW)
    assert path.name in str(info.value)
    assert listing(folder) == names  # no backup, no temp file
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_fifo()}
    assert after == before


# --- line endings, final newline, BOM -----------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_crlf_stays_crlf_and_every_other_line_is_byte_identical(
    tmp_path: Path, kind: str, name: str
) -> None:
    lf_text = (FIXTURES / name).read_bytes()
    crlf_text = lf_text.replace(b"\n", b"\r\n")
    lf = write(tmp_path, "lf.yaml", lf_text)
    crlf = write(tmp_path, "crlf.yaml", crlf_text)
    write_config(kind, lf, SETTINGS, now=NOW)
    write_config(kind, crlf, SETTINGS, now=NOW)
    after = crlf.read_bytes()
    # The same edit as on the LF file, with CRLF on every line, new ones included.
    assert after == lf.read_bytes().replace(b"\n", b"\r\n")
    assert b"\n" not in after.replace(b"\r\n", b"")
    old_lines = crlf_text.split(b"\r\n")
    new_lines = after.split(b"\r\n")
    sm = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "equal":
            continue
        # Only lines about the LB endpoint and its SANs differ.
        for line in old_lines[a0:a1] + new_lines[b0:b1]:
            text = line.decode()
            assert any(w in text for w in LB_WORDS) or text.lstrip().startswith("- "), text


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_no_final_newline_stays_so(tmp_path: Path, kind: str, name: str) -> None:
    for newline in (b"\n", b"\r\n"):
        raw = (FIXTURES / name).read_bytes().rstrip(b"\n").replace(b"\n", newline)
        path = write(tmp_path, f"nofinal{len(newline)}.yaml", raw)
        write_config(kind, path, SETTINGS, now=NOW)
        after = path.read_bytes()
        assert not after.endswith(b"\n")
        assert b"192.168.0.253" in after
        # A second run finds nothing to do.
        assert not write_config(kind, path, SETTINGS, now=NOW).changed


def test_byte_order_mark_is_kept(tmp_path: Path) -> None:
    raw = "\ufeff".encode() + (FIXTURES / "kubespray-all.yml").read_bytes()
    path = write(tmp_path, "all.yml", raw)
    write_config("kubespray", path, SETTINGS, now=NOW)
    after = path.read_bytes()
    assert after.startswith("\ufeff".encode()) and after.count("\ufeff".encode()) == 1
    assert not write_config("kubespray", path, SETTINGS, now=NOW).changed


def test_key_with_an_empty_value_on_the_last_line(tmp_path: Path) -> None:
    for text, kind in [
        ("a: 1\nloadbalancer_apiserver:\n  address:", "kubespray"),
        ("a: 1\nloadbalancer_apiserver:\n  address: 10.0.0.1\n  port:", "kubespray"),
        ("a: 1\napiserver_loadbalancer_domain_name:", "kubespray"),
        ("a: 1\nloadbalancer_apiserver:", "kubespray"),
        ("a: 1\nsupplementary_addresses_in_ssl_keys:", "kubespray"),
        ("kind: Cluster\nspec:\n  controlPlaneEndpoint:\n    address:", "kubekey"),
        ("kind: Cluster\nspec:\n  controlPlaneEndpoint:\n    port:  # here", "kubekey"),
        ("loadbalancer_apiserver:\n  address: ~\n  port: null", "kubespray"),
    ]:
        path = write(tmp_path, "c.yaml", text.encode())
        write_config(kind, path, SETTINGS, now=NOW)
        after = path.read_text()
        assert "192.168.0.253" in after and "8443" in after, text
        assert not after.endswith("\n"), text
        assert not write_config(kind, path, SETTINGS, now=NOW).changed
        for p in tmp_path.glob("c.yaml.halb-bak-*"):
            p.unlink()


# --- mode, owner, backups -----------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_mode_and_owner_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", path)
    os.chown(path, 4321, 8765)
    path.chmod(0o620)
    result = write_config("kubespray", path, SETTINGS, now=NOW)
    for p in (path, result.backup):
        assert p is not None
        st = p.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 8765, 0o620), p


def test_planted_symlink_at_the_backup_name_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", path)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    planted = tmp_path / "all.yml.halb-bak-20240506070809"
    planted.symlink_to(victim)
    result = write_config("kubespray", path, SETTINGS, now=NOW)
    assert victim.read_text() == "keep\n"
    assert planted.is_symlink()
    assert result.backup == tmp_path / "all.yml.halb-bak-20240506070809.1"
    assert result.backup.read_bytes() == (FIXTURES / "kubespray-all.yml").read_bytes()


def test_read_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", path)
    path.chmod(0o444)
    refused("kubespray", path, "read-only")


def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", path)
    folder.chmod(0o555)
    try:
        refused("kubespray", path, "not writable")
    finally:
        folder.chmod(0o755)


def test_dry_run_on_a_read_only_file_still_shows_the_change(tmp_path: Path) -> None:
    path = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", path)
    path.chmod(0o444)
    assert write_config("kubespray", path, SETTINGS, dry_run=True).changed


# --- what is read -------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_fifo_device_directory_are_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    refused("kubespray", fifo, "not a regular file")
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        write_config("kubespray", Path("/dev/zero"), SETTINGS)
    (tmp_path / "dir.yml").mkdir()
    refused("kubespray", tmp_path / "dir.yml", "is a directory")


def test_huge_binary_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    big = write(tmp_path, "big.yml", b"a: 1\n" + b"#" * MAX_CONFIG_BYTES)
    refused("kubespray", big, "halb reads at most")
    latin1 = write(tmp_path, "latin1.yml", "a: caf\xe9\n".encode("latin-1"))
    refused("kubespray", latin1, "not UTF-8")
    nul = write(tmp_path, "nul.yml", b"a: 1\n\0\n")
    refused("kubespray", nul, "NUL")


def bomb(levels: int = 9) -> bytes:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return ("\n".join(lines) + "\nloadbalancer_apiserver:\n  address: x\n").encode()


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("bomb.yml", bomb(), "more than 5000 values, aliases expanded"),
        ("deep.yml", b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested deeper"),
        ("deepmap.yml", b"".join(b"  " * i + b"k:\n" for i in range(200)) + b"x: 1\n", "deeper"),
        ("recursive.yml", b"a: &a [1, *a]\n", "recursive"),
        ("undefined.yml", b"a: *nowhere\n", "undefined"),
    ],
    ids=["bomb", "deep-flow", "deep-block", "recursive", "undefined"],
)
def test_yaml_bombs_are_refused_quickly(tmp_path: Path, name: str, data: bytes, match: str) -> None:
    path = write(tmp_path, name, data)
    start = time.monotonic()
    refused("kubespray", path, match)
    assert time.monotonic() - start < 2.0


def test_nesting_just_under_the_limit_is_fine(tmp_path: Path) -> None:
    deep = "x: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "\n"
    path = write(tmp_path, "ok.yml", deep.encode())
    assert write_config("kubespray", path, SETTINGS, now=NOW).written


# --- merge keys and anchors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "key"),
    [
        (
            "kubespray",
            "base: &b\n  address: 1.2.3.4\n  port: 6443\nloadbalancer_apiserver:\n  <<: *b\n",
            "loadbalancer_apiserver.address",
        ),
        (
            "kubespray",
            "base: &b\n  port: 6443\nloadbalancer_apiserver:\n  address: 1.2.3.4\n  <<: *b\n",
            "loadbalancer_apiserver.port",
        ),
        (
            "kubespray",
            "base: &b\n  loadbalancer_apiserver: {address: 1.2.3.4, port: 1}\n<<: *b\n",
            "loadbalancer_apiserver",
        ),
        (
            "kubespray",
            "base: &b\n  apiserver_loadbalancer_domain_name: x\n<<: *b",
            "apiserver_loadbalancer_domain_name",
        ),
        (
            "kubespray",
            "lb: &b\n  address: 1.2.3.4\n  port: 6443\nloadbalancer_apiserver: *b\n",
            "loadbalancer_apiserver",
        ),
        (
            "kubekey",
            "kind: Cluster\nbase: &b\n  controlPlaneEndpoint: {address: x}\n"
            "spec:\n  <<: *b\n  hosts: []\n",
            "spec.controlPlaneEndpoint",
        ),
        (
            "kubekey",
            "kind: Cluster\nbase: &b\n  port: 6443\nspec:\n  controlPlaneEndpoint:\n"
            "    <<: *b\n    address: x\n",
            "spec.controlPlaneEndpoint.port",
        ),
    ],
)
def test_merge_keys_and_shared_anchors_are_refused_naming_the_key(
    tmp_path: Path, kind: str, text: str, key: str
) -> None:
    path = write(tmp_path, "c.yaml", text.encode())
    refused(kind, path, f"c.yaml: {key.replace('.', '[.]')}: ")


def test_merge_key_away_from_the_lb_keys_is_fine(tmp_path: Path) -> None:
    text = "defaults: &d\n  x: 1\nother:\n  <<: *d\n  y: 2\nloadbalancer_apiserver:\n  port: 1\n"
    path = write(tmp_path, "all.yml", text.encode())
    write_config("kubespray", path, SETTINGS, now=NOW)
    after = path.read_text()
    assert after.startswith(text.replace("port: 1", "port: 8443"))


def test_file_changed_during_the_edit_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "all.yml"
    shutil.copy(FIXTURES / "kubespray-all.yml", path)
    import halb.installers as installers

    real = installers.edit

    def edit_then_someone_writes(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        path.write_text("someone: else\n")
        return result

    monkeypatch.setattr(installers, "edit", edit_then_someone_writes)
    with pytest.raises(InputError, match="changed while halb was editing it"):
        write_config("kubespray", path, SETTINGS, now=NOW)
    assert path.read_text() == "someone: else\n"
    assert listing(tmp_path) == ["all.yml"]


def test_an_anchor_no_alias_uses_is_edited(tmp_path: Path) -> None:
    path = write(tmp_path, "all.yml", b"loadbalancer_apiserver: &lb\n  address: 1.2.3.4\n")
    write_config("kubespray", path, SETTINGS, now=NOW)
    assert path.read_text().startswith("loadbalancer_apiserver: &lb\n  address: 192.168.0.253\n")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"password: hunter2-secret\npassword: other-secret\n", 'duplicate key "password"'),
        (b"a: 1\n# \x1b[2J\n", r"control character U\+001B"),
        (b"loadbalancer_apiserver:\n  address: |\n    1.2.3.4\n", "block scalar"),
        (b"loadbalancer_apiserver: !vault |\n  $ANSIBLE_VAULT;1.1\n", "is a tagged value"),
    ],
)
def test_yaml_problems_are_named_without_echoing_values(
    tmp_path: Path, text: bytes, match: str
) -> None:
    path = write(tmp_path, "all.yml", text)
    with pytest.raises(InputError, match=match) as info:
        write_config("kubespray", path, SETTINGS, now=NOW)
    assert "secret" not in str(info.value)


# --- values halb writes -------------------------------------------------------------------

HOSTILE_DOMAINS = [
    "lb.example\nevil: 1",
    "lb.example\r\n  injected: true",
    'lb"quoted',
    "lb'single",
    "lb: colon",
    "lb #comment",
    "{flow: map}",
    "[a, b]",
    "*alias",
    "&anchor x",
    "!!python/object x",
    "- dash",
    "yes",
    "0x1F",
    "",
    " leading space",
    "ünïcødé.example",
    "x" * 5000,
]


@pytest.mark.parametrize(("kind", "name"), CASES)
@pytest.mark.parametrize("domain", HOSTILE_DOMAINS, ids=range(len(HOSTILE_DOMAINS)))
def test_values_are_written_as_data_or_refused(
    tmp_path: Path, kind: str, name: str, domain: str
) -> None:
    """A value never adds a key or a line of its own: it reads back exactly, or is refused."""
    path = tmp_path / name
    shutil.copy(FIXTURES / name, path)
    before = yaml.safe_load(path.read_text())
    settings = LBSettings("192.168.0.253", 6443, domain)
    try:
        write_config(kind, path, settings, now=NOW)
    except InputError:
        assert path.read_bytes() == (FIXTURES / name).read_bytes()
        return
    after = yaml.safe_load(path.read_text())
    if kind == "kubekey":
        assert after["spec"]["controlPlaneEndpoint"]["domain"] == domain
        assert set(after["spec"]) == set(before["spec"]) | {"kubernetes"}
    else:
        assert after["apiserver_loadbalancer_domain_name"] == domain
        new_keys = set(after) - set(before)
        assert new_keys <= {
            "apiserver_loadbalancer_domain_name",
            "loadbalancer_apiserver",
            "supplementary_addresses_in_ssl_keys",
        }


def test_a_file_just_under_the_node_limit_is_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """halb's own additions may take the edited text over the limit: it is still checked."""
    from halb.installers import limits

    monkeypatch.setattr(limits, "MAX_NODES", 50)
    path = write(tmp_path, "all.yml", b"l: [" + b", ".join(b"%d" % i for i in range(45)) + b"]\n")
    assert write_config("kubespray", path, SETTINGS, now=NOW).written
    refused(
        "kubespray", write(tmp_path, "over.yml", b"l: [1" + b", 1" * 60 + b"]\n"), "more than 50"
    )
