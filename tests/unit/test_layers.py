"""Layer rules: which parts of halb may import which, read from the source with `ast`.

The pure core (records, parsers, planning, judging, rendering) must not reach an effect
(a subprocess, a socket, a thread pool, a transport, a service manager), directly or
through another module: a pure module is tested without root and without a host, and
that stays true only if nothing it imports can run a command. Imports under
`if TYPE_CHECKING:` are not run, so they do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "halb"

# The pure core. A name ending in "." stands for every module of that package.
PURE = (
    "halb.errors",
    "halb.paths",
    "halb.shell",
    "halb.daemons",
    "halb.facts.",
    "halb.spec.",
    "halb.inventory.",
    "halb.render",
    "halb.redirect",
    "halb.roles",
    "halb.status_report",
    "halb.deploy.plan",
    "halb.deploy.report",
    "halb.deploy.settle",
    "halb.deploy.steps",
    "halb.drain.judge",
    "halb.drain.handover",
    "halb.preflight.judge",
    "halb.preflight.observed",
    "halb.preflight.open_firewall",
    "halb.preflight.report",
    "halb.drill.model",
    "halb.drill.fault_kinds",
    "halb.lab.topology",
    "halb.lab.vagrant",
    "halb.lab.vagrant_parse",
    "halb.lab.vm_box",
    "halb.installers.facts",
    "halb.installers.watch",
)
# Effects: the standard library's ways to run, talk or wait, and halb's own edge.
EFFECTS = (
    "subprocess",
    "socket",
    "ssl",
    "select",
    "signal",
    "threading",
    "concurrent.",
    "multiprocessing.",
    "asyncio.",
    "urllib.request",
    "http.client",
    "pty",
    "psutil.",
    "scapy.",
    "halb.transport.",
    "halb.services",
    "halb.gather",
    "halb.status",
    "halb.deploy.apply",
    "halb.deploy.run",
    "halb.deploy.locks",
    "halb.deploy.vips",
    "halb.drain.run",
    "halb.drill.run",
    "halb.drill.faults",
    "halb.drill.capture",
    "halb.drill.load",
    "halb.preflight.collect",
    "halb.installers.runner",
    "halb.installers.inputwait",
    "halb.installers.report",
    "halb.cli.",
)


def matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name == p.rstrip(".") or (p.endswith(".") and name.startswith(p)) for p in patterns)


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root` by its dotted name."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = [package, *f.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The modules importing `name` runs (at any depth of the file, but not under `if
    TYPE_CHECKING:`), with the packages whose __init__ that runs first."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            # `from pkg import mod` runs pkg.mod as well
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    with_parents = set(found)
    for mod in found:
        parts = mod.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return with_parents


def violations(
    known: Mapping[str, Path], pure: Iterable[str], effects: Iterable[str]
) -> dict[str, list[str]]:
    """Pure module -> the import chain to the first effect it reaches, for each one."""
    pure, effects = tuple(pure), tuple(effects)
    direct = {n: imports_of(n, p, known) for n, p in known.items()}
    out: dict[str, list[str]] = {}
    for start in known:
        if not matches(start, pure):
            continue
        # breadth first: the shortest chain is the one worth showing. Importing a module
        # runs its packages' __init__ first, so those count as its imports too.
        seen = {start: [start]}
        queue = [start]
        parts = start.split(".")
        for pkg in (".".join(parts[:i]) for i in range(1, len(parts))):
            seen[pkg] = [start, pkg]
            queue.append(pkg)
        while queue:
            cur = queue.pop(0)
            for dep in sorted(direct.get(cur, ())):
                if dep in seen:
                    continue
                chain = [*seen[cur], dep]
                if matches(dep, effects):
                    out.setdefault(start, []).append(" -> ".join(chain))
                    seen[dep] = chain
                    continue
                seen[dep] = chain
                if dep in known:
                    queue.append(dep)
    return out


KNOWN = module_files(ROOT, "halb")


def test_every_pure_name_is_a_module() -> None:
    """A renamed module must not drop out of the rules unnoticed."""
    for p in PURE:
        assert any(matches(n, (p,)) for n in KNOWN), f"{p}: no such module"


def test_pure_modules_reach_no_effect() -> None:
    bad = violations(KNOWN, PURE, EFFECTS)
    assert not bad, "pure modules that reach an effect:\n" + "\n".join(
        f"  {c}" for chains in bad.values() for c in chains
    )


def test_only_the_cli_imports_the_cli() -> None:
    for name, path in KNOWN.items():
        if name.startswith("halb.cli"):
            continue
        reached = {m for m in imports_of(name, path, KNOWN) if matches(m, ("halb.cli.",))}
        assert not reached, f"{name} imports {sorted(reached)}"


def _tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        f = tmp_path / "pkg" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return module_files(tmp_path / "pkg", "pkg")


@pytest.mark.parametrize(
    ("files", "chain"),
    [
        # directly
        ({"core.py": "import subprocess\n"}, "pkg.core -> subprocess"),
        # inside a function
        ({"core.py": "def f():\n    from socket import socket\n"}, "pkg.core -> socket"),
        # through a pure-looking module of its own
        (
            {"core.py": "from pkg.util import x\n", "util.py": "from pkg.edge import run\n"},
            "pkg.core -> pkg.util -> pkg.edge",
        ),
        # through the package __init__ that a submodule import runs first
        (
            {
                "core.py": "from pkg.sub.names import N\n",
                "sub/__init__.py": "from pkg.edge import run\n",
                "sub/names.py": "N = 1\n",
            },
            "pkg.core -> pkg.sub -> pkg.edge",
        ),
        # its own package's __init__, which importing it runs first
        (
            {"sub/__init__.py": "from pkg.edge import run\n", "sub/core.py": "N = 1\n"},
            "pkg.sub.core -> pkg.sub -> pkg.edge",
        ),
        # relative
        ({"core.py": "from . import edge\n"}, "pkg.core -> pkg.edge"),
    ],
)
def test_the_rule_catches_an_effect(tmp_path: Path, files: dict[str, str], chain: str) -> None:
    known = _tree(tmp_path, {"__init__.py": "", "edge.py": "import subprocess\n", **files})
    start = chain.split(" -> ")[0]
    bad = violations(known, [start], ["subprocess", "socket", "pkg.edge"])
    assert chain in bad.get(start, []), bad


def test_the_rule_lets_type_checking_imports_pass(tmp_path: Path) -> None:
    known = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "edge.py": "import subprocess\n",
            "core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from pkg.edge import run\nelse:\n    import json\n",
        },
    )
    assert violations(known, ["pkg.core"], ["subprocess", "pkg.edge"]) == {}
