"""Deploy rendered files to the LB hosts: plan first as data, then apply it safely.

plan.py (pure records and the plan), apply.py (the executor, one host), locks.py,
vips.py (waiting for one holder per VIP), report.py, run.py (`deploy()`: all of it).
A host whose files are unchanged gets no upload and no reload.
"""

from __future__ import annotations

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
