"""Cluster model -> per-LB-host files, through the Jinja2 templates. Pure and deterministic."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2

from halb import __version__, vrrp_filter
from halb.drain.handover import FORWARD_CHAIN, KEEP_LOCAL, forward_rule
from halb.errors import SpecError
from halb.facts.haproxy import SHOW_STAT
from halb.kinds import hostport, shown
from halb.paths import (
    CHECK_SCRIPT,
    DRAIN_FLAG,
    FAILBACK_SCRIPT,
    FAILBACK_STATE_DIR,
    FAILBACK_TABLE,
    HAPROXY_CFG,
    HAPROXY_DROPIN,
    HAPROXY_EXIT_FILE,
    HAPROXY_PIDFILE,
    KEEPALIVED_CONF,
    KEEPALIVED_DROPIN,
    MANAGED_MARK,
    NOTIFY_SCRIPT,
    REDIRECT_NFT,
    REDIRECT_SCRIPT,
    REDIRECT_TABLE,
    RETURNING_FLAG,
    SCRIPT_DIR,
    SYSCTL_CONF,
    VRRP_NFT,
    VRRP_STATE_DIR,
)
from halb.spec import Cluster
from halb.spec.profiles import PROFILES, master_down, standby_weight

__all__ = [
    "CHECK_SCRIPT",
    "HAPROXY_CFG",
    "HAPROXY_DROPIN",
    "HAPROXY_PIDFILE",
    "KEEPALIVED_CONF",
    "KEEPALIVED_DROPIN",
    "NOTIFY_SCRIPT",
    "SCRIPT_DIR",
    "SYSCTL_CONF",
    "HostFiles",
    "RenderedFile",
    "check_peers_agree",
    "host_context",
    "render_cluster",
    "render_host",
    "template_env",
    "vrrp_instances",
    "with_vrrp_filter",
]

HEADER = f"{MANAGED_MARK} {__version__}; local edits are replaced on the next deploy."


@dataclass(frozen=True)
class RenderedFile:
    content: str
    mode: int


HostFiles = dict[str, RenderedFile]


# A line break or control character would end a directive and start another.
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _one_line(value: Any) -> Any:
    """Second line of defence behind halb.kinds: no value may add a line to a file."""
    if isinstance(value, str) and _UNSAFE_TEXT.search(value):
        raise SpecError(f"refusing to render {shown(value)}: it holds a line break")
    return value


def template_env() -> jinja2.Environment:
    """The one Jinja2 setup: packaged templates, undefined names are errors, and every
    value rendered stays on its line."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("halb", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_one_line,
    )
    env.filters["hostport"] = hostport
    return env


def _fmt_advert(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def host_context(cluster: Cluster, host: str) -> dict[str, Any]:
    lb = {h.name: h for h in cluster.lb_hosts}[host]
    host_ip = cluster.host_ip(lb)
    peers = [cluster.host_ip(h) for h in cluster.lb_hosts if h.name != host]
    # each VRRP instance sends from and to addresses of its own family
    unicast_of: dict[int, tuple[str, list[str]]] = {4: (host_ip, peers)}
    if 6 in cluster.families:
        src6 = cluster.host_address(lb, 6) or ""
        peers6 = [cluster.host_address(h, 6) or "" for h in cluster.lb_hosts if h.name != host]
        unicast_of[6] = (src6, peers6)
    profile = PROFILES[cluster.spec.vrrp.profile]
    return {
        "header": HEADER,
        "cluster": cluster.name,
        "host": host,
        "host_ip": host_ip,
        # keepalived's own router_id (a name for logs), not the VRRP id
        "host_router_id": re.sub(r"[^A-Za-z0-9_.-]", "_", f"{cluster.name}_{host}"),
        "peers": peers,
        "unicast_of": unicast_of,
        "families": cluster.families,
        "vips": cluster.vips,
        "frontends": cluster.frontends,
        "health": cluster.spec.health,
        "vrrp_version": cluster.vrrp_version,
        "advert_int": _fmt_advert(cluster.advert_int),
        "unicast": cluster.spec.vrrp.unicast,
        "nopreempt": cluster.spec.vrrp.nopreempt,
        "auth_password": cluster.auth_password,
        "track_weight": cluster.track_weight,
        "standby_weights": {v.instance: standby_weight(v.priorities, host) for v in cluster.vips},
        "check_script": CHECK_SCRIPT,
        "notify_script": NOTIFY_SCRIPT,
        "check_interval": profile.check_interval,
        "check_fall": profile.check_fall,
        # The co-located check FAULTs only when HAProxy and the host's own backends are
        # all down; one check slowed past its timeout on a loaded host must not move the
        # VIP, so it needs two failures in a row even where the profile's `fall` is 1.
        "fallthrough_fall": max(2, profile.check_fall),
        "check_timeout": profile.check_timeout,
        "haproxy_pidfile": HAPROXY_PIDFILE,
        "haproxy_exit_file": HAPROXY_EXIT_FILE,
        "failback_script": FAILBACK_SCRIPT,
        "returning_flag": RETURNING_FLAG,
        **redirect_context(cluster, host_ip),
        **failback_context(cluster, host),
    }


def _cs(seconds: float) -> int:
    """Hundredths of a second, what failback.sh counts in."""
    return round(seconds * 100)


def failback_context(cluster: Cluster, host: str) -> dict[str, Any]:
    """What failback.sh needs: per VIP this host's and its peers' priorities, the bridge
    rule with the holder left open, the frontends; the timers (halb.spec.profiles)."""
    delay = max((v.preempt_delay for v in cluster.vips), default=0.0)
    instances = []
    for v in cluster.vips:
        ips = {h.name: cluster.host_address(h, v.family) for h in cluster.lb_hosts}
        rule = forward_rule(v.address, "@HOLDER@", v.interface)
        instances.append(
            {
                "name": v.instance,
                "fam": "ip" if v.family == 4 else "ip6",
                "vip": v.address,
                "dev": v.interface,
                "vrid": v.router_id,
                "priority": v.priorities[host],
                "flag": RETURNING_FLAG + v.instance,
                # a peer without an address of the family is known by its adverts alone
                "peers": [(ips[n], p) for n, p in v.priorities.items() if n != host and ips[n]],
                "rule": rule if v.family == 4 else rule.replace("ip daddr", "ip6 daddr", 1),
                "frontends": [fe.name for fe in cluster.frontends if fe.vip_name == v.name],
            }
        )
    families = [
        (fam, [i for i in instances if i["fam"] == fam])
        for fam in ("ip", "ip6")
        if any(i["fam"] == fam for i in instances)
    ]
    return {
        "fb_instances": instances,
        "fb_families": families,
        "frontend_names": [fe.name for fe in cluster.frontends],
        "hold": _fmt_advert(cluster.failback_hold),
        "grace": _fmt_advert(cluster.failback_grace),
        "hold_cs": _cs(cluster.failback_hold),
        "grace_cs": _cs(cluster.failback_grace),
        # the preempt delay and a takeover, with slack for a busy host
        "wait_cs": _cs(delay + master_down(cluster.advert_int) + 5),
        # an advert from the holder is at most one interval old; three of them missed and
        # it is no longer the holder
        "advert_timeout_ms": max(1000, round(3000 * cluster.advert_int) + 500),
        "preempt": 0 if cluster.spec.vrrp.nopreempt else 1,
        "state_dir": FAILBACK_STATE_DIR,
        "vrrp_state_dir": VRRP_STATE_DIR,
        "fb_table": FAILBACK_TABLE,
        "drain_flag": DRAIN_FLAG,
        # shell text shared with halb (one line per value: no value may hold a line break)
        "keep_local": KEEP_LOCAL.strip("\n").splitlines(),
        "show_stat": SHOW_STAT.strip("\n").splitlines(),
        "forward_chain": FORWARD_CHAIN,
    }


def redirect_context(cluster: Cluster, host_ip: str) -> dict[str, Any]:
    """What redirect.nft, redirect.sh, notify.sh and keepalived.conf need; empty values
    without a redirect. `fallthrough`: per redirected VIP's instance, the public ports this
    host's own backends hold (the apiserver's 6443, a NodePort) with the frontend's check,
    which answer the VIP while HAProxy is down here; keepalived checks them instead of
    FAULTing on HAProxy's exit."""
    redirected = cluster.redirected
    vips = {fe.vip_name for fe in redirected}
    instances = [(v.instance, v.address) for v in cluster.vips if v.name in vips]
    return {
        "redirected": redirected,
        "redirect_script": REDIRECT_SCRIPT if redirected else "",
        "table": REDIRECT_TABLE,
        "instances": instances,
        # "PORT:CHECK ...": each port is judged as HAProxy judges that backend (an
        # apiserver that accepts connections but is not ready must not hold the VIP)
        "fallthrough": {
            inst: " ".join(
                f"{p}:{c}"
                for p, c in sorted({(fe.port, fe.check) for fe in redirected if fe.address == vip})
            )
            for inst, vip in instances
        },
        "host_ip": host_ip,
        "exit_file": HAPROXY_EXIT_FILE,
        "redirect_off_dir": VRRP_STATE_DIR,
    }


def render_host(cluster: Cluster, host: str, env: jinja2.Environment | None = None) -> HostFiles:
    env = env or template_env()
    ctx = host_context(cluster, host)

    def r(name: str) -> str:
        return env.get_template(name).render(ctx)

    files: HostFiles = {
        HAPROXY_CFG: RenderedFile(r("haproxy.cfg.j2"), 0o644),
        KEEPALIVED_CONF: RenderedFile(r("keepalived.conf.j2"), 0o600),
        CHECK_SCRIPT: RenderedFile(r("check_haproxy.sh.j2"), 0o755),
        NOTIFY_SCRIPT: RenderedFile(r("notify.sh.j2"), 0o755),
        FAILBACK_SCRIPT: RenderedFile(r("failback.sh.j2"), 0o755),
        SYSCTL_CONF: RenderedFile(r("sysctl.conf.j2"), 0o644),
    }
    if cluster.redirected:
        files[REDIRECT_NFT] = RenderedFile(r("redirect.nft.j2"), 0o600)
        files[REDIRECT_SCRIPT] = RenderedFile(r("redirect.sh.j2"), 0o755)
    lb = next(h for h in cluster.lb_hosts if h.name == host)
    if cluster.service_manager(lb) == "systemd":
        dropin = _unit("haproxy.service.d-90-halb.conf")
        if cluster.redirected:
            dropin += REDIRECT_EXIT_HOOK
        files[HAPROXY_DROPIN] = RenderedFile(dropin, 0o644)
        files[KEEPALIVED_DROPIN] = RenderedFile(_unit("keepalived.service.d-90-halb.conf"), 0o644)
    return files


# Where the public ports are redirected, HAProxy's exit takes the VIPs out of the redirect
# at once (redirect.sh exited), and traffic to them falls through to this host's own
# backends; keepalived's check puts them back once HAProxy runs again.
REDIRECT_EXIT_HOOK = (
    "# the VIPs out of halb's redirect at once: this host's own backends answer them\n"
    f"ExecStopPost=-{REDIRECT_SCRIPT} exited\n"
)


def with_vrrp_filter(
    cluster: Cluster,
    rendered: Mapping[str, Mapping[str, RenderedFile]],
    macs: Mapping[str, Mapping[str, str]],
) -> dict[str, HostFiles]:
    """The rendered files plus each host's VRRP filter (halb/vrrp_filter.py), which needs
    every LB host's MAC on the VIPs' interfaces: {host: {interface: MAC}}."""
    env = template_env()
    out: dict[str, HostFiles] = {}
    for host, files in rendered.items():
        ctx = {"header": HEADER, "host": host, **vrrp_filter.context(cluster, host, macs)}
        text = env.get_template("vrrp.nft.j2").render(ctx)
        out[host] = {**files, VRRP_NFT: RenderedFile(text, 0o600)}
    return out


def _unit(name: str) -> str:
    """systemd drop-ins ship as plain files in halb/systemd."""
    return (resources.files("halb") / "systemd" / name).read_text()


def render_cluster(cluster: Cluster) -> dict[str, HostFiles]:
    """{LB host: {absolute target path: RenderedFile}}, in inventory order."""
    env = template_env()
    out = {h.name: render_host(cluster, h.name, env) for h in cluster.lb_hosts}
    check_peers_agree(out)
    return out


_INSTANCE = re.compile(r"^vrrp_instance\s+(\S+)\s*\{(.*?)^\}", re.M | re.S)


def vrrp_instances(conf: str) -> dict[str, dict[str, str]]:
    """Parse the per-instance settings peers must agree on from a keepalived.conf."""
    out: dict[str, dict[str, str]] = {}
    for m in _INSTANCE.finditer(conf):
        body = m.group(2)
        fields: dict[str, str] = {}
        for key in ("virtual_router_id", "advert_int", "interface", "priority"):
            km = re.search(rf"^\s*{key}\s+(\S+)", body, re.M)
            if km:
                fields[key] = km.group(1)
        vm = re.search(r"virtual_ipaddress\s*\{\s*(\S+)", body)
        if vm:
            fields["vip"] = vm.group(1)
        out[m.group(1)] = fields
    return out


def check_peers_agree(rendered: Mapping[str, HostFiles]) -> None:
    """Peers must share router id, advert interval and VIP per instance; priorities differ."""
    seen: dict[str, tuple[str, dict[str, str]]] = {}
    prios: dict[str, dict[str, str]] = {}
    for host, files in rendered.items():
        conf = files[KEEPALIVED_CONF].content
        for inst, fields in vrrp_instances(conf).items():
            shared = {
                k: v for k, v in fields.items() if k in ("virtual_router_id", "advert_int", "vip")
            }
            if inst in seen and seen[inst][1] != shared:
                other = seen[inst][0]
                raise SpecError(
                    f"rendered keepalived.conf for {host} and {other} disagree on {inst}: "
                    f"{shared} vs {seen[inst][1]}"
                )
            seen.setdefault(inst, (host, shared))
            p = fields.get("priority", "")
            if p in prios.setdefault(inst, {}):
                raise SpecError(
                    f"rendered keepalived.conf for {host} and {prios[inst][p]} share "
                    f"priority {p} on {inst}"
                )
            prios[inst][p] = host
