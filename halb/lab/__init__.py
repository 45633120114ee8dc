"""The lab: real hosts (network + mount + UTS namespaces) on this machine.

    lab = up("demo", "lab", lbs=2, masters=3, nodes=3)
    lab.run("taskbox", ["ssh", ...]); lab.set_readyz("master1", 500)
    down("demo", "lab")

`Lab` objects come from `up`, `load(dir)` or `running(...)` (a context manager).
"""

from __future__ import annotations

from halb.lab.build import running, up
from halb.lab.discover import existing_labs, pick_name, status
from halb.lab.model import Lab, load
from halb.lab.netns import LabError, ip_netns_available, require_root
from halb.lab.teardown import down
from halb.lab.topology import LabHost, LabPlan, Role, octet_of, plan

__all__ = [
    "Lab",
    "LabError",
    "LabHost",
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
