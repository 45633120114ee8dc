"""The rendered shell scripts expand no value: each passes `sh -n`, and run with hostile
arguments in a scratch mount namespace (tmpfs over every folder they write) they change
nothing but their own files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from halb.render import CHECK_SCRIPT, NOTIFY_SCRIPT, render_cluster
from halb.spec import load_cluster

CASE = Path(__file__).parent / "cases" / "ks-guide"

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root for a private mount namespace",
)

# Inside the namespace: tmpfs over /run, /var/log and /tmp (the script's cwd), the script
# from stdin, run with the test's arguments, then every path it added to those folders.
SCRATCH = r"""
set -e
for d in /run /var/log /tmp; do mount -t tmpfs -o size=4m halbtest "$d"; done
[ -e /dev/log ] && mount --bind /dev/null /dev/log
mkdir /run/halbtest
cat > /run/halbtest/script.sh
chmod 700 /run/halbtest/script.sh
cd /tmp
: > /run/halbtest/before
find /run /var/log /tmp -mindepth 1 | sort > /run/halbtest/before
set +e
/run/halbtest/script.sh "$@" >/dev/null 2>&1
echo "rc=$?"
find /run /var/log /tmp -mindepth 1 | sort | comm -13 /run/halbtest/before -
"""


def scripts() -> dict[str, str]:
    files = next(iter(render_cluster(load_cluster(CASE / "halb.yaml")).values()))
    return {"notify": files[NOTIFY_SCRIPT].content, "check": files[CHECK_SCRIPT].content}


def run_scratch(script: str, args: list[str]) -> tuple[str, list[str]]:
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRATCH, "sh", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    rc, *paths = p.stdout.splitlines()
    return rc, paths


@pytest.mark.parametrize("name", ["notify", "check"])
def test_scripts_parse(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.sh"
    path.write_text(scripts()[name])
    p = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr


def test_notify_writes_its_state_and_log() -> None:
    rc, paths = run_scratch(scripts()["notify"], ["INSTANCE", "halb_internal", "MASTER", "150"])
    assert rc == "rc=0"
    assert paths == [
        "/run/halb",
        "/run/halb/vrrp-halb_internal.state",
        "/var/log/halb",
        "/var/log/halb/notify.log",
    ]


ARG = st.one_of(
    st.sampled_from(
        ["$(touch PWNED)", "`touch PWNED`", "../../../tmp/PWNED", "a/../../b", "-n", "*",
         "; touch PWNED", "'", '"', "\n", "${IFS}", "halb_internal", "x" * 300, ".hidden"]
    ),
    # argv is bytes: no NUL and no lone surrogate can reach a script
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30),
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(ARG, min_size=0, max_size=5))
@example(args=["INSTANCE", "x" * 300, "MASTER", "1"])
@example(args=["INSTANCE", "../../tmp/PWNED", "MASTER", "1"])
@example(args=["INSTANCE", "halb_internal", "$(touch /tmp/PWNED)", "`touch PWNED`"])
def test_hostile_arguments_change_nothing_but_own_files(args: list[str]) -> None:
    _, paths = run_scratch(scripts()["check"], args)
    assert paths == []
    _, paths = run_scratch(scripts()["notify"], args)
    extra = set(paths)
    name = args[1] if len(args) > 1 else ""
    if extra:  # only for an instance name that is a plain file name
        assert extra == {
            "/run/halb",
            f"/run/halb/vrrp-{name}.state",
            "/var/log/halb",
            "/var/log/halb/notify.log",
        }
