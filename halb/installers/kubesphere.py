"""KubeSphere 2.1 `conf/common.yaml`: the LB endpoint for its bundled Kubespray.

The file carries a commented-out `HA(Highly Available) loadbalancer example config`; it
stays a comment and the real keys go right after it, so a diff shows only added lines.
"""

from __future__ import annotations

from halb.installers.edit import EditResult, LBSettings
from halb.installers.kubespray import edit_kubespray_vars


def edit_common_yaml(text: str, settings: LBSettings, source: str) -> EditResult:
    """Set apiserver_loadbalancer_domain_name, loadbalancer_apiserver and the SAN list."""
    return edit_kubespray_vars(text, settings, source)
