"""Building the command line imports no heavy library; each command imports what it uses."""

from __future__ import annotations

import subprocess
import sys

from halb import choices
from halb.installers import EDITORS

HEAVY = ("pydantic", "jinja2", "scapy", "matplotlib", "ruamel", "yaml")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(r.stdout.split()) & set(HEAVY)


def test_building_the_cli_imports_no_heavy_library() -> None:
    assert _imported_after("import halb.cli; from halb.cli.common import app") == set()


def test_deploy_imports_neither_scapy_nor_matplotlib() -> None:
    code = (
        "import sys, halb.cli\n"
        "sys.argv = ['halb', 'deploy', '-c', '/nonexistent/halb.yaml']\n"
        "try:\n    halb.cli.main()\nexcept SystemExit as e:\n    assert e.code == 2, e.code"
    )
    found = _imported_after(code)
    assert "scapy" not in found and "matplotlib" not in found
    assert "pydantic" in found  # the spec was loaded: the command really ran


def test_choices_match_what_uses_them() -> None:
    assert tuple(EDITORS) == choices.INSTALLER_KINDS
    from halb import probe, up

    assert up.STAGES == choices.STAGES
    assert probe.DEFAULT_TIMEOUT == choices.PROBE_TIMEOUT
