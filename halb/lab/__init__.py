"""The lab: real hosts (network + mount + UTS namespaces) on this machine.

    lab = up("demo", "lab", lbs=2, masters=3, nodes=3)
    lab.run("taskbox", ["ssh", ...]); lab.set_readyz("master1", 500)
    down("demo", "lab")

`Lab` objects come from `up`, `load(dir)` or `running(...)` (a context manager).
"""

from __future__ import annotations

from halb.lab.build import (
    down,
    existing_labs,
    pick_name,
    require_root,
    running,
    status,
    up,
)
from halb.lab.model import Lab, load
from halb.lab.netns import LabError, ip_netns_available
from halb.lab.topology import HostPlan, LabPlan, Role, octet_of, plan

__all__ = [
    "HostPlan",
    "Lab",
    "LabError",
    "LabPlan",
    "Role",
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
