"""KubeKey config files as they come: one or more YAML documents, KubeKey 1.x-3.x or v4.

- `kk create config --with-kubesphere` (and every docs example from KubeKey 1.0 to 2.2)
  writes the `Cluster` document, `---`, then ks-installer's `ClusterConfiguration`. Only
  the `Cluster` document is edited; every other byte, separators included, stays.
- KubeKey v4 (`apiVersion: kubekey.kubesphere.io/v1`, `kind: Config`) has
  `spec.kubernetes.control_plane_endpoint: {host, port, type}`, where host is "IP or
  DNS". halb sets host to the VIP's address (no name to resolve) and the port.
Pure: text in, text out.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from halb.errors import InputError
from halb.installers.edit import (
    UNREADABLE_MESSAGE,
    UNREADABLE_VALUE,
    Editor,
    EditResult,
    LBSettings,
    expected_copy,
    finish,
    load_mapping,
    scalar_text,
)
from halb.installers.kubekey import edit_cluster_config
from halb.installers.yamlpos import (
    is_flow,
    key_pos,
    subtree_end,
)
from halb.kinds import clip, shown

V4_API = "kubekey.kubesphere.io/v1"
CPE4 = "control_plane_endpoint"

# A document start marker: `---` alone, or followed by blanks or a comment.
_DOC_START = re.compile(r"---(?:[ \t]|\r?\n|$)")


@dataclass(frozen=True)
class Document:
    marker: str  # the `---` line that opens it ("" for the text before the first marker)
    body: str

    @property
    def text(self) -> str:
        return self.marker + self.body


def split_documents(text: str, source: str) -> list[Document]:
    """The file cut at its `---` lines; joining the pieces gives the text back exactly."""
    parts: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines(keepends=True):
        if _DOC_START.match(line):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                raise InputError(
                    f"{source}: a '---' line carries content ({len(parts)} documents in); "
                    "put that on its own line"
                )
            parts.append((line, []))
        else:
            parts[-1][1].append(line)
    return [Document(marker, "".join(lines)) for marker, lines in parts]


def _load(body: str, source: str, index: int) -> Any:
    try:
        return YAML(typ="safe", pure=True).load(io.StringIO(body))
    except UNREADABLE_VALUE:
        raise InputError(f"{source}: document {index + 1}: {UNREADABLE_MESSAGE}") from None
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1} of it)" if mark is not None else ""
        raise InputError(f"{source}: document {index + 1} is not valid YAML{where}") from None


def edit_kubekey_config(text: str, settings: LBSettings, source: str = "config.yaml") -> EditResult:
    """Set the endpoint in the file's KubeKey document; leave every other document alone."""
    docs = split_documents(text, source)
    content = [(i, d, _load(d.body, source, i)) for i, d in enumerate(docs)]
    content = [(i, d, data) for i, d, data in content if data is not None]
    if len(docs) == 1 or len(content) <= 1:
        # One document: the single-document editor, with its own checks and messages.
        only = content[0][2] if content else None
        if _kind(only) == "Config":
            return edit_v4_config(text, settings, source)
        return edit_cluster_config(text, settings, source)

    clusters = [(i, d) for i, d, data in content if _kind(data) == "Cluster"]
    v4 = [(i, d) for i, d, data in content if _kind(data) == "Config"]
    found = clusters or v4
    if not found:
        kinds = ", ".join(clip(_kind(data), 40) for _, _, data in content[:10])
        raise InputError(
            f"{source}: none of its {len(content)} YAML documents (kinds: {kinds}) is a "
            "KubeKey 'Cluster' or v4 'Config'"
        )
    if len(found) > 1:
        raise InputError(
            f"{source}: {len(found)} KubeKey documents (documents "
            f"{', '.join(str(i + 1) for i, _ in found)}); halb edits a file with one"
        )
    index, doc = found[0]
    edit = edit_cluster_config if clusters else edit_v4_config
    result = edit(doc.body, settings, f"{source} (document {index + 1})")
    pieces = [d.text for d in docs]
    pieces[index] = doc.marker + result.text
    return EditResult("".join(pieces), result.warnings)


def _kind(data: Any) -> Any:
    return data.get("kind") if isinstance(data, dict) else None


def _port(current: Any, port: int) -> str | int:
    """The port as the file writes it: `port: "6443"` stays a quoted string."""
    return str(port) if isinstance(current, str) else port


def edit_v4_config(text: str, settings: LBSettings, source: str = "config.yaml") -> EditResult:
    """KubeKey v4: spec.kubernetes.control_plane_endpoint.host = VIP, .port = frontend port."""
    data = load_mapping(text, source)
    api = data.get("apiVersion", "")
    if data.get("kind") != "Config" or api != V4_API:
        raise InputError(
            f"{source}: apiVersion {shown(api)} kind {shown(data.get('kind'))}; expected "
            f"KubeKey v4's '{V4_API}' 'Config'"
        )
    spec = data.get("spec")
    if not isinstance(spec, CommentedMap) or not spec or is_flow(spec):
        raise InputError(f"{source}: spec: missing or not a block mapping; not a KubeKey v4 config")
    if ":" in settings.address:
        # builtin/core/roles/kubernetes/init-kubernetes/templates/kubeadm/kubeadm-init.*:
        # `controlPlaneEndpoint: {{ host }}:{{ port }}`, and kubeadm takes a text that is
        # no host:port but parses as an IP as the address itself
        raise InputError(
            f"{source}: the apiserver endpoint {settings.address} is IPv6, and KubeKey v4 "
            "writes kubeadm's controlPlaneEndpoint as host:port without brackets, which "
            f"kubeadm reads as the one address {settings.address}:{settings.port}: give the "
            "apiserver frontend an IPv4 VIP (vips.internal.address; address6 beside it "
            "keeps an IPv6 one)"
        )
    ed = Editor(text, source)
    expected = expected_copy(data)
    kube = spec.get("kubernetes")
    cpe = kube.get(CPE4) if isinstance(kube, CommentedMap) else None
    wanted: dict[str, str | int] = {
        "host": settings.address,
        "port": _port(cpe.get("port") if isinstance(cpe, CommentedMap) else None, settings.port),
    }
    body = [f"{k}: {scalar_text(v)}" for k, v in wanted.items()]
    where = f"spec.kubernetes.{CPE4}"
    if "kubernetes" not in spec:
        _append(ed, [(data, "spec"), (spec, list(spec)[-1])], spec, ["kubernetes:", f"  {CPE4}:"]
                + [f"    {line}" for line in body])  # fmt: skip
        expected["spec"]["kubernetes"] = {CPE4: dict(wanted)}
    elif not isinstance(kube, CommentedMap) or not kube or is_flow(kube):
        raise InputError(f"{source}: spec.kubernetes: expected a block mapping")
    elif CPE4 not in kube:
        path = [(data, "spec"), (spec, "kubernetes"), (kube, list(kube)[-1])]
        _append(ed, path, kube, [f"{CPE4}:", *(f"  {line}" for line in body)])
        expected["spec"]["kubernetes"][CPE4] = dict(wanted)
    elif isinstance(cpe, CommentedMap) and cpe and not is_flow(cpe):
        for k, v in wanted.items():
            if k in cpe:
                ed.set_scalar(cpe, k, v, f"{where}.{k}")
        missing = [f"{k}: {scalar_text(v)}" for k, v in wanted.items() if k not in cpe]
        if missing:
            path = [(data, "spec"), (spec, "kubernetes"), (kube, CPE4), (cpe, list(cpe)[-1])]
            _append(ed, path, cpe, missing)
        expected["spec"]["kubernetes"][CPE4] = {**expected["spec"]["kubernetes"][CPE4], **wanted}
    else:
        raise InputError(f"{source}: {where}: expected a block mapping (host, port, type)")
    new_text = finish(ed, expected, f"{where}.host and .port")
    return EditResult(new_text, tuple(_v4_warnings(cpe, source)))


def _append(
    ed: Editor, path: list[tuple[CommentedMap, str]], mapping: CommentedMap, body: list[str]
) -> None:
    """Add `body` (lines relative to the mapping's keys) after the mapping's last entry."""
    pad = " " * key_pos(mapping, next(iter(mapping)))[1]
    ed.insert(subtree_end(ed.lines, path), [pad + line for line in body])


def _v4_warnings(cpe: Any, source: str) -> list[str]:
    kind = str(cpe.get("type") or "") if isinstance(cpe, CommentedMap) else ""
    if kind in ("kube_vip", "kube-vip"):
        what = "kube-vip would claim the VIP that keepalived holds"
    elif kind == "haproxy":
        what = "KubeKey would put its own haproxy on every node in front of halb's VIP"
    else:
        return []
    return [
        f'{source}: spec.kubernetes.{CPE4}.type is "{kind}": {what}; set it to "local" to '
        "use halb's load balancer only (left unchanged)"
    ]
