"""KubeKey cluster config (`kind: Cluster`): spec.controlPlaneEndpoint and the cert SANs.

`internalLoadbalancer` and `externalDNS` are left as the user wrote them. KubeKey's own
haproxy or kube-vip would sit beside halb's VIP (kube-vip would even claim the same
address), so those values are reported as warnings, not changed behind the user's back.
"""

from __future__ import annotations

from ruamel.yaml.comments import CommentedMap

from halb.errors import InputError
from halb.installers.edit import (
    Editor,
    EditResult,
    LBSettings,
    expected_copy,
    finish,
    load_mapping,
    names_source,
    scalar_text,
)
from halb.installers.yamlpos import (
    first_key_col,
    is_flow,
    own_keys,
    refuse_merged,
    refuse_shared,
    subtree_end,
)
from halb.kinds import shown

CPE = "controlPlaneEndpoint"
SANS = "apiserverCertExtraSans"


@names_source
def edit_cluster_config(text: str, settings: LBSettings, source: str) -> EditResult:
    data = load_mapping(text, source)
    kind = data.get("kind")
    if kind is not None and kind != "Cluster":
        raise InputError(f"{source}: kind is {shown(kind)}; expected a KubeKey 'Cluster'")
    refuse_merged(data, ["spec"])
    spec = data.get("spec")
    if not isinstance(spec, CommentedMap) or is_flow(spec):
        raise InputError(f"{source}: spec: missing or not a block mapping; not a KubeKey config")
    refuse_merged(spec, [CPE, "kubernetes"], "spec.")
    refuse_shared(spec, "spec", text)
    for key in (CPE, "kubernetes"):
        refuse_shared(spec.get(key), f"spec.{key}", text)
    ed = Editor(text, source)
    expected = expected_copy(data)
    cpe = spec.get(CPE)
    # KubeKey 1.0 wrote `port: "6443"`: a quoted port stays a quoted string.
    old_port = cpe.get("port") if isinstance(cpe, CommentedMap) else None
    wanted: dict[str, str | int] = {
        "domain": settings.domain,
        "address": settings.address,
        "port": str(settings.port) if isinstance(old_port, str) else settings.port,
    }

    if CPE not in spec:
        _add_child(ed, data, spec, CPE, [f"{k}: {scalar_text(v)}" for k, v in wanted.items()])
        expected["spec"][CPE] = dict(wanted)
    elif isinstance(cpe, CommentedMap) and cpe and not is_flow(cpe):
        refuse_merged(cpe, list(wanted), f"spec.{CPE}.")
        for k, v in wanted.items():
            if k in cpe:
                ed.set_scalar(cpe, k, v, f"spec.{CPE}.{k}")
        missing = {k: v for k, v in wanted.items() if k not in cpe}
        if missing:
            pad = " " * first_key_col(cpe, f"spec.{CPE}")
            last = subtree_end(ed.lines, [(data, "spec"), (spec, CPE)])
            ed.insert(last, [f"{pad}{k}: {scalar_text(v)}" for k, v in missing.items()])
        expected["spec"][CPE] = {**expected["spec"][CPE], **wanted}
    else:
        raise InputError(f"{source}: spec.{CPE}: expected a block mapping (domain, address, port)")

    kube = spec.get("kubernetes")
    if "kubernetes" not in spec:
        _add_child(ed, data, spec, "kubernetes", [f"{SANS}:", *(f"- {s}" for s in _sans(settings))])
        expected["spec"]["kubernetes"] = {SANS: settings.sans}
    elif isinstance(kube, CommentedMap) and kube and not is_flow(kube):
        refuse_merged(kube, [SANS], "spec.kubernetes.")
        refuse_shared(kube.get(SANS), f"spec.kubernetes.{SANS}", text)
        if SANS in kube:
            ed.append_items(kube, SANS, settings.sans, f"spec.kubernetes.{SANS}")
            have = list(expected["spec"]["kubernetes"][SANS] or [])
            seen = {str(v) for v in have}
            expected["spec"]["kubernetes"][SANS] = have + [
                s for s in settings.sans if s not in seen
            ]
        else:
            pad = " " * first_key_col(kube, "spec.kubernetes")
            last = subtree_end(ed.lines, [(data, "spec"), (spec, "kubernetes")])
            ed.insert(last, [f"{pad}{SANS}:", *(f"{pad}- {s}" for s in _sans(settings))])
            expected["spec"]["kubernetes"][SANS] = settings.sans
    else:
        raise InputError(f"{source}: spec.kubernetes: expected a block mapping")

    new_text = finish(ed, expected, f"spec.{CPE} and spec.kubernetes.{SANS}")
    return EditResult(new_text, tuple(_warnings(spec, source)))


def _sans(settings: LBSettings) -> list[str]:
    return [scalar_text(s) for s in settings.sans]


def _add_child(
    ed: Editor, data: CommentedMap, spec: CommentedMap, key: str, body: list[str]
) -> None:
    """Add `key:` with `body` (lines relative to it) as the last entry of spec."""
    pad = " " * first_key_col(spec, "spec")
    last = subtree_end(ed.lines, [(data, "spec"), (spec, own_keys(spec)[-1])])
    ed.insert(last, [f"{pad}{key}:", *(f"{pad}  {line}" for line in body)])


def _warnings(spec: CommentedMap, source: str) -> list[str]:
    out: list[str] = []
    cpe = spec.get(CPE)
    if not isinstance(cpe, CommentedMap):
        return out
    internal = str(cpe.get("internalLoadbalancer") or "")
    if internal in ("haproxy", "kube-vip"):
        what = (
            "kube-vip would claim the VIP that keepalived holds"
            if internal == "kube-vip"
            else "KubeKey would put its own haproxy on every worker beside halb's VIP"
        )
        out.append(
            f'{source}: spec.{CPE}.internalLoadbalancer is "{internal}": {what}; '
            'set it to "" to use halb\'s load balancer only (left unchanged)'
        )
    if cpe.get("externalDNS") is True:
        out.append(
            f"{source}: spec.{CPE}.externalDNS is true: KubeKey then resolves the domain "
            "by DNS and expects address to be empty; make the domain resolve to the VIP"
        )
    return out
