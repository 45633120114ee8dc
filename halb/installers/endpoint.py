"""Which of the cluster's frontends serves the kube-apiserver: its VIP and port go into
the installer's config.

Not the frontend's name: a frontend called `k8s-api` that binds 8443 and sends to the
control-plane hosts on 6443 is the apiserver endpoint, and the installer must be told 8443.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from halb.errors import InputError
from halb.roles import GROUP_NAMES, Role

APISERVER_PORT = 6443
CONTROL_PLANE_GROUPS = GROUP_NAMES[Role.CONTROL_PLANE]


@dataclass(frozen=True)
class FrontendView:
    """What the choice needs to know of one frontend."""

    name: str
    vip_name: str  # "internal" | "external"
    address: str
    port: int
    group: str  # the inventory group of its backends
    backend_port: int
    backend_hosts: frozenset[str]


def choose_apiserver_frontend(
    frontends: Sequence[FrontendView], control_plane: Collection[str], where: str
) -> FrontendView:
    """The frontend whose backends are the control-plane hosts on the apiserver port.

    `control_plane` is the set of control-plane host names from the inventory. Ties go to
    the internal VIP, then to a frontend named `apiserver`; otherwise the choice is the
    user's, and the error names the frontends that compete.
    """
    hosts = frozenset(control_plane)
    found = [
        fe
        for fe in frontends
        if fe.backend_port == APISERVER_PORT
        and (fe.group in CONTROL_PLANE_GROUPS or (hosts and fe.backend_hosts == hosts))
    ]
    if not found:
        named = [fe for fe in frontends if fe.name == "apiserver"]
        if named:
            return named[0]
        raise InputError(
            f"{where}: no frontend sends to the control-plane hosts on port {APISERVER_PORT} "
            "(backends: kube-master, backend_port: 6443), so halb cannot tell the installer "
            "where the apiserver is"
        )
    for narrow in (_on_internal, _named_apiserver):
        if len(found) > 1:
            found = [fe for fe in found if narrow(fe)] or found
    if len(found) > 1:
        names = ", ".join(f"{fe.name} ({fe.address}:{fe.port})" for fe in found)
        raise InputError(
            f"{where}: frontends {names} all serve the apiserver; halb cannot tell which one "
            "the installer should use: keep one, or name the one to use `apiserver`"
        )
    return found[0]


def _on_internal(fe: FrontendView) -> bool:
    return fe.vip_name == "internal"


def _named_apiserver(fe: FrontendView) -> bool:
    return fe.name == "apiserver"
