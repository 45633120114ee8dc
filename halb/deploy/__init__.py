"""Deploy rendered files to the LB hosts: plan first as data, then apply it safely.

plan.py (pure records and the plan), apply.py (the executor, one host), locks.py,
vips.py (waiting for one holder per VIP), report.py, run.py (`deploy()`: all of it).
A host whose files are unchanged gets no upload and no reload.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halb.deploy.plan import (
        Action,
        FileStep,
        HostPlan,
        Plan,
        ServiceAction,
        compute_plan,
        diff_lines,
        mask_secrets,
        package_manager,
        plan_host,
        plan_lines,
        sha256,
    )
    from halb.deploy.report import DeployReport, HostResult
    from halb.deploy.run import deploy

__all__ = [
    "Action",
    "DeployReport",
    "FileStep",
    "HostPlan",
    "HostResult",
    "Plan",
    "ServiceAction",
    "compute_plan",
    "deploy",
    "diff_lines",
    "mask_secrets",
    "package_manager",
    "plan_host",
    "plan_lines",
    "sha256",
]

# Each name above, imported from its module on first use: importing one pure part of
# this package (halb.deploy.plan) must not run the imports of its effects.
_WHERE = {
    "Action": "plan",
    "FileStep": "plan",
    "HostPlan": "plan",
    "Plan": "plan",
    "ServiceAction": "plan",
    "compute_plan": "plan",
    "diff_lines": "plan",
    "mask_secrets": "plan",
    "package_manager": "plan",
    "plan_host": "plan",
    "plan_lines": "plan",
    "sha256": "plan",
    "DeployReport": "report",
    "HostResult": "report",
    "deploy": "run",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
