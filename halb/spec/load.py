"""Reading halb.yaml and its inventory, and resolving them into a Cluster."""

from __future__ import annotations

import datetime
import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from halb import kinds, yamlload
from halb.errors import InventoryError, SpecError
from halb.files import read_input
from halb.inventory import Inventory, load_inventory
from halb.spec.checks import Checker
from halb.spec.cluster import Cluster
from halb.spec.findings import Finding, SpecInvalid, capped
from halb.spec.model import HealthSpec, Spec
from halb.spec.profiles import PROFILES, TRACK_MARGIN, TRACK_WEIGHT_MAX


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        raise SpecError(f"{path}: not found (write one with `halb init -i hosts.ini --vip ADDR`)")
    raw = read_input(path, "spec", error=SpecError)
    if b"\0" in raw:
        raise SpecError(f"{path}: binary file, expected YAML")
    try:
        data = yamlload.load(raw.decode("utf-8"), unique_keys=True)
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text, expected YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}: invalid YAML{where}: {kinds.shown(problem, 200)[1:-1]}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{path}: expected a mapping of keys (cluster, inventory, vips, ...), got {kind}"
        )
    return data


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that holds the key at loc (for 'did you mean')."""
    model: type[BaseModel] | None = Spec
    parts = list(loc[:-1])
    while parts and model is not None:
        info = model.model_fields.get(_part(parts.pop(0)))
        if info is None:
            return None
        ann = info.annotation
        model = _find_model(ann)
        if getattr(ann, "__origin__", None) is dict and parts:
            parts.pop(0)  # the mapping's own key, e.g. a frontend's name
    return model


def _find_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _part(p: int | str) -> str:
    """One part of a pydantic location (a list index, or a key that may be any text)."""
    return p if isinstance(p, str) else kinds.shown(p)


def _pydantic_findings(path: Path, exc: ValidationError) -> list[Finding]:
    out: list[Finding] = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        key = ".".join(kinds.clip(_part(p), 40) for p in loc) or "(top level)"
        where = f"{path.name}: {key}"
        if e["type"] == "extra_forbidden":
            model = _model_at(loc)
            valid = sorted(model.model_fields) if model else []
            near = difflib.get_close_matches(_part(loc[-1])[:100], valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            choices = f" (valid keys: {', '.join(valid)})" if valid else ""
            out.append(Finding("error", where, f"unknown key{hint}{choices}"))
        elif e["type"] == "missing":
            out.append(Finding("error", where, "required key is missing"))
        elif e["type"] == "value_error":  # a halb.kinds check: its message quotes the value
            msg = str(e["ctx"]["error"]) if "ctx" in e else e["msg"]
            out.append(Finding("error", where, msg))
        else:
            value = e.get("input")
            # By what the value is, not only "password": vrrp.auth, any key or token.
            secret = any(p != "[key]" and kinds.secret_key(p) for p in loc)
            shown = "" if secret else f" (got {kinds.shown(value)})"
            if not secret and isinstance(value, (datetime.date, datetime.time)):
                shown += "; YAML reads it as a date or time: quote it"
            out.append(Finding("error", where, f"{e['msg']}{shown}"))
    return out


def parse_spec(path: Path, data: Mapping[str, Any]) -> Spec:
    try:
        return Spec.model_validate(dict(data))
    except ValidationError as e:
        raise SpecInvalid(_pydantic_findings(path, e)) from None


def load_cluster(path: Path) -> Cluster:
    """Read halb.yaml and its inventory, run every offline check; raise on any error."""
    cluster, findings = check(path)
    errors = [f for f in findings if f.level == "error"]
    if errors or cluster is None:
        raise SpecInvalid(errors)
    return cluster


def check(path: Path) -> tuple[Cluster | None, list[Finding]]:
    """Every offline check; returns the cluster when there is no error, and its findings
    (at most MAX_FINDINGS of each level, then a count of the rest)."""
    cluster, findings = _check(path)
    return cluster, capped(findings)


def _check(path: Path) -> tuple[Cluster | None, list[Finding]]:
    if not path.is_absolute():
        try:
            path = path.resolve()
        except (RuntimeError, OSError):  # a symlink loop: read_input names it
            path = Path(os.path.abspath(path))
    data = read_yaml_mapping(path)
    try:
        spec = parse_spec(path, data)
    except SpecInvalid as e:
        return None, list(e.findings)
    inv_path = spec.inventory if spec.inventory.is_absolute() else path.parent / spec.inventory
    try:
        inventory = load_inventory(inv_path)
    except InventoryError as e:
        return None, [Finding("error", f"{path.name}: inventory", str(e))]
    return resolve(spec, path, inventory)


def resolve(spec: Spec, path: Path, inventory: Inventory) -> tuple[Cluster | None, list[Finding]]:
    c = Checker(spec, path, inventory)
    lbs = c.lb_hosts()
    c.host_addresses(lbs)
    if len(lbs) == 1:
        c.warn(
            "lb_hosts",
            f"one LB host ({lbs[0].name}): the VIP has no failover (no HA), and keepalived "
            "sends its adverts by multicast (unicast needs a peer; with its own address as "
            "the peer keepalived 2.2.7 logs a warning on every advert)",
        )
    vips = c.vips(lbs)
    prios = [p for v in vips for p in v.priorities.values() if 1 <= p <= 254]
    gap = (max(prios) - min(prios)) if prios else 0
    if gap + TRACK_MARGIN > TRACK_WEIGHT_MAX:
        c.error(
            "vips",
            f"the priorities span {gap} ({min(prios)}..{max(prios)}); the HAProxy check's "
            f"weight must exceed the span by {TRACK_MARGIN} and keepalived allows at most "
            f"{TRACK_WEIGHT_MAX}, so keep the span <= {TRACK_WEIGHT_MAX - TRACK_MARGIN}",
        )
    version, advert, password = c.vrrp()
    frontends = c.frontends(vips, lbs)
    c.sizes()
    c.installer()
    c.findings = list(dict.fromkeys(c.findings))  # a host in two frontends: one message
    if any(f.level == "error" for f in c.findings):
        return None, c.findings
    profile = PROFILES[spec.vrrp.profile]
    if profile.health and "health" not in spec.model_fields_set:
        inter, fall, rise = profile.health  # the profile's checks unless the user set any
        spec = spec.model_copy(update={"health": HealthSpec(inter=inter, fall=fall, rise=rise)})
    cluster = Cluster(
        spec=spec,
        config_path=path,
        inventory=inventory,
        lb_hosts=tuple(lbs),
        vips=tuple(vips),
        frontends=tuple(frontends),
        vrrp_version=version,
        advert_int=advert,
        # crosses the gap: a sick top host falls below every peer
        track_weight=-(gap + TRACK_MARGIN),
        auth_password=password,
        warnings=tuple(f for f in c.findings if f.level != "error"),
        failback_hold=_or(spec.vrrp.failback_hold, profile.failback_hold),
        failback_grace=_or(spec.vrrp.failback_grace, profile.failback_grace),
    )
    return cluster, c.findings


def _or(given: float | None, default: float) -> float:
    return default if given is None else given
