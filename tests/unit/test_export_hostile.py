"""`halb export ansible` with hostile folder names and destinations: every exported file
parses as its format (INI for ansible.cfg as Ansible reads it, one YAML document per
playbook and vars file) and says what it should, or the export is refused with one line."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from halb.cli import app

GOLDEN = Path(__file__).parent.parent / "golden" / "cases"
runner = CliRunner()

# Characters a folder name may hold that mean something to INI, YAML, Jinja or a terminal.
PIECES = ["\n", "\r", " ", "\t", ";", " ;", "#", "%", "%(x)s", "'", '"', "{{", "}}", "{%",
          "[defaults]", "vault_password_file = /x", "- hosts: all", ": ", "\x1b[2J", "\u2028",
          "é", "\\", "$HOME", "*", "&a", "!!python/name:os.system", "---", "..."]  # fmt: skip
FOLDER = (
    st.lists(
        st.one_of(st.sampled_from(PIECES), st.text(alphabet="ab-_.", min_size=1, max_size=4)),
        min_size=1,
        max_size=4,
    )
    .map("".join)
    .filter(lambda s: s not in (".", "..") and "/" not in s)
)


def make_case(root: Path, folder: str, password_file: bool) -> Path:
    d = root / folder
    d.mkdir(parents=True)
    for name in ("halb.yaml", "hosts.ini"):
        shutil.copy(GOLDEN / "pass-auth" / name, d / name)
    if password_file:
        (d / "vrrp.pass").write_text("Zq9pass\n")
        spec = (
            (d / "halb.yaml").read_text().replace("password: Vr7pass", "password_file: vrrp.pass")
        )
        (d / "halb.yaml").write_text(spec)
    return d / "halb.yaml"


def check_export(dest: Path, spec: Path, password_file: bool) -> None:
    # ansible.cfg, read the way ansible-core's config manager reads it
    cfg = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cfg.read_string((dest / "ansible.cfg").read_text())
    assert cfg.sections() == ["defaults", "ssh_connection"]
    assert cfg.get("defaults", "inventory", raw=True) == str(spec.parent / "hosts.ini")
    assert set(cfg["defaults"]) == {
        "inventory", "roles_path", "forks", "interpreter_python", "retry_files_enabled"
    }  # fmt: skip
    for path in sorted(dest.rglob("*.yml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        assert len(docs) == 1, path
    (play,) = yaml.safe_load((dest / "site.yml").read_text())
    assert play["roles"] == ["halb_lb"] and play["hosts"] == "lb1:lb2"
    # the password's lookup names the file, whatever its folder is called
    seen: list[str] = []

    def lookup(kind: str, path: str) -> str:
        seen.append(path)
        return "vrrp:\n  auth:\n    password: Vr7pass\n" if path.endswith(".yaml") else "pw\n"

    env = jinja2.Environment()
    env.globals["lookup"] = lookup
    env.filters["from_yaml"] = yaml.safe_load
    env.from_string(play["vars"]["halb_vrrp_auth_pass"]).render()
    want = spec.parent / "vrrp.pass" if password_file else spec
    assert seen == [str(want)]
    for line in (dest / "site.yml").read_text().splitlines():
        assert line.isprintable()


@settings(
    max_examples=30,
    derandomize=True,  # the same examples on every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(folder=FOLDER, password_file=st.booleans())
def test_every_exported_file_parses_as_its_format(
    folder: str, password_file: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("export")
    spec = make_case(root, folder, password_file)
    dest = root / "out"
    r = runner.invoke(app, ["export", "ansible", "-c", str(spec), str(dest)])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code == 2:
        lines = r.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: halb export: the inventory path")
        assert lines[0].isprintable() and len(lines[0]) < 600
        assert not dest.exists()
        return
    assert r.exit_code == 0, r.output
    check_export(dest, spec, password_file)


@pytest.mark.parametrize(
    "folder", ["x\nvault_password_file = /tmp/run", "x ;comment", "x\t;y", "x\r", "x%(y)s#z"]
)
def test_newline_or_comment_in_the_inventory_folder_is_refused_or_kept_exact(
    tmp_path: Path, folder: str
) -> None:
    spec = make_case(tmp_path, folder, False)
    r = runner.invoke(app, ["export", "ansible", "-c", str(spec), str(tmp_path / "out")])
    if "%" in folder:  # Ansible reads values raw: '%' and '#' stay as they are
        assert r.exit_code == 0, r.output
        check_export(tmp_path / "out", spec, False)
    else:
        assert r.exit_code == 2 and "cannot be written into ansible.cfg" in r.output
        (line,) = r.output.splitlines()  # the newline shows escaped: one line
        assert line.isprintable()


def test_newline_in_the_spec_folder_adds_no_play(tmp_path: Path) -> None:
    # The inventory is elsewhere (a plain folder), so only site.yml's header sees the name.
    spec = make_case(tmp_path, "x\n- hosts: all\n  tasks: [{shell: id}]\n#", False)
    (tmp_path / "inv").mkdir()
    shutil.move(spec.parent / "hosts.ini", tmp_path / "inv" / "hosts.ini")
    spec.write_text(
        spec.read_text().replace("inventory: hosts.ini", f"inventory: {tmp_path}/inv/hosts.ini")
    )
    r = runner.invoke(app, ["export", "ansible", "-c", str(spec), str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    plays = yaml.safe_load((tmp_path / "out" / "site.yml").read_text())
    assert len(plays) == 1 and "tasks" not in plays[0]


def test_dest_that_is_a_symlink_to_an_earlier_export_is_replaced_through_the_link(
    tmp_path: Path,
) -> None:
    spec = make_case(tmp_path, "c", False)
    real = tmp_path / "export-1"
    assert runner.invoke(app, ["export", "ansible", "-c", str(spec), str(real)]).exit_code == 0
    (real / "host_files" / "stale").mkdir()
    link = tmp_path / "current"
    link.symlink_to(real)
    r = runner.invoke(app, ["export", "ansible", "-c", str(spec), str(link)])
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and link.resolve() == real
    assert (real / ".halb-export").is_file() and not (real / "host_files" / "stale").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "current", "export-1"]


def test_dest_that_is_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    spec = make_case(tmp_path, "c", False)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    r = runner.invoke(app, ["export", "ansible", "-c", str(spec), str(loop)])
    assert r.exit_code == 2 and "symbolic link loop" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "loop"]
