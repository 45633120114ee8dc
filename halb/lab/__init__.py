"""The lab: real hosts (network + mount + UTS namespaces) on this machine.

    lab = up("demo", "lab", lbs=2, masters=3, nodes=3)
    lab.run("taskbox", ["ssh", ...]); lab.set_readyz("master1", 500)
    down("demo", "lab")

`Lab` objects come from `up`, `load(dir)` or `running(...)` (a context manager).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halb.lab.build import running, up
    from halb.lab.discover import existing_labs, pick_name, status
    from halb.lab.model import Lab, load
    from halb.lab.netns import LabError, ip_netns_available, require_root
    from halb.lab.teardown import down
    from halb.lab.topology import LabHost, LabPlan, LabRole, octet_of, plan

__all__ = [
    "Lab",
    "LabError",
    "LabHost",
    "LabPlan",
    "LabRole",
    "down",
    "existing_labs",
    "ip_netns_available",
    "load",
    "octet_of",
    "pick_name",
    "plan",
    "require_root",
    "running",
    "status",
    "up",
]

# Each name above, imported from its module on first use: importing one pure part of
# this package (halb.lab.topology) must not run the imports of its effects.
_WHERE = {
    "running": "build",
    "up": "build",
    "existing_labs": "discover",
    "pick_name": "discover",
    "status": "discover",
    "Lab": "model",
    "load": "model",
    "LabError": "netns",
    "ip_netns_available": "netns",
    "require_root": "netns",
    "down": "teardown",
    "LabHost": "topology",
    "LabPlan": "topology",
    "LabRole": "topology",
    "octet_of": "topology",
    "plan": "topology",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
