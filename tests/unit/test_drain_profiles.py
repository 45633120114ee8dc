"""The VRRP profiles: what each one renders, and that drain's track weight stays valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from halb.render import HAPROXY_CFG, KEEPALIVED_CONF, render_cluster
from halb.spec import PROFILES, Cluster, default_priorities, load_cluster


def cluster_with(tmp_path: Path, lbs: int, **vrrp: object) -> Cluster:
    names = [f"lb{i}" for i in range(1, lbs + 1)]
    lines = ["[all]"]
    lines += [f"{n} ip=10.9.0.{i + 10}" for i, n in enumerate(names)]
    lines += ["m1 ip=10.9.0.5", "[lb]", *names, "[kube-master]", "m1", "[k8s-cluster:children]"]
    lines += ["kube-master"]
    (tmp_path / "hosts.ini").write_text("\n".join(lines) + "\n")
    spec = {
        "cluster": "prof",
        "inventory": "hosts.ini",
        "vips": {"internal": {"address": "10.9.0.100", "interface": "eth0"}},
        "vrrp": vrrp,
    }
    (tmp_path / "halb.yaml").write_text(yaml.safe_dump(spec))
    return load_cluster(tmp_path / "halb.yaml")


def test_default_profile_keeps_its_conservative_values(tmp_path: Path) -> None:
    c = cluster_with(tmp_path, 2, profile="default")
    assert (c.vrrp_version, c.advert_int) == (2, 1.0)
    assert dict(c.vips[0].priorities) == {"lb1": 250, "lb2": 230}
    assert c.vips[0].preempt_delay == 0.0
    conf = render_cluster(c)["lb1"][KEEPALIVED_CONF].content
    assert "preempt_delay" not in conf and "advert_int 1\n" in conf
    assert default_priorities(["a", "b", "c"]) == {"a": 250, "b": 230, "c": 210}


def test_fast_profile_renders_v3_short_adverts_high_priorities_and_a_preempt_delay(
    tmp_path: Path,
) -> None:
    c = cluster_with(tmp_path, 2, profile="fast")
    assert (c.vrrp_version, c.advert_int) == (3, 0.03)
    assert dict(c.vips[0].priorities) == {"lb1": 254, "lb2": 252}
    files = render_cluster(c)["lb2"]
    conf = files[KEEPALIVED_CONF].content
    for line in ("vrrp_version 3", "advert_int 0.03", "priority 252", "preempt_delay 3.0"):
        assert line in conf
    assert "default-server inter 1s fall 2 rise 2" in files[HAPROXY_CFG].content


def test_fast_profile_skew_is_under_a_millisecond_for_every_backup(tmp_path: Path) -> None:
    c = cluster_with(tmp_path, 4, profile="fast")
    for p in c.vips[0].priorities.values():
        assert (256 - p) / 256 * c.advert_int < 0.001


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("lbs", [2, 3, 5, 10, 30])
def test_a_drained_or_sick_host_falls_below_every_peer(
    tmp_path: Path, profile: str, lbs: int
) -> None:
    c = cluster_with(tmp_path, lbs, profile=profile)
    prios = c.vips[0].priorities
    assert len(set(prios.values())) == lbs
    assert all(1 <= p <= 254 for p in prios.values())
    for host, p in prios.items():
        others = [q for h, q in prios.items() if h != host]
        assert p + c.track_weight < min(others)
    assert -253 <= c.track_weight < 0


def test_nopreempt_and_an_explicit_delay_override_the_profile(tmp_path: Path) -> None:
    c = cluster_with(tmp_path, 2, profile="fast", nopreempt=True)
    conf = render_cluster(c)["lb1"][KEEPALIVED_CONF].content
    assert "nopreempt" in conf and "preempt_delay" not in conf
    c = cluster_with(tmp_path, 2, profile="fast", preempt_delay=7.5)
    assert "preempt_delay 7.5" in render_cluster(c)["lb1"][KEEPALIVED_CONF].content
    c = cluster_with(tmp_path, 2, profile="default", preempt_delay=2)
    assert "preempt_delay 2" in render_cluster(c)["lb1"][KEEPALIVED_CONF].content


def test_health_given_by_the_user_wins_over_the_fast_profile(tmp_path: Path) -> None:
    c = cluster_with(tmp_path, 2, profile="fast")
    data = yaml.safe_load((tmp_path / "halb.yaml").read_text())
    data["health"] = {"inter": "3s"}
    (tmp_path / "halb.yaml").write_text(yaml.safe_dump(data))
    c = load_cluster(tmp_path / "halb.yaml")
    assert "default-server inter 3s fall 3 rise 2" in render_cluster(c)["lb1"][HAPROXY_CFG].content


def test_emulated_profile_renders_slower_adverts_and_checks(tmp_path: Path) -> None:
    c = cluster_with(tmp_path, 2, profile="emulated")
    assert (c.vrrp_version, c.advert_int) == (2, 2.0)
    assert dict(c.vips[0].priorities) == {"lb1": 250, "lb2": 230}
    files = render_cluster(c)["lb1"]
    conf = files[KEEPALIVED_CONF].content
    assert "advert_int 2\n" in conf and "preempt_delay" not in conf
    p = PROFILES["emulated"]
    check = conf.split("vrrp_script chk_haproxy {")[1].split("}")[0]
    assert f"interval {p.check_interval}\n" in check and f"timeout {p.check_timeout}\n" in check
    assert f"fall {p.check_fall}\n" in check
    inter, fall, rise = p.health or ("", 0, 0)
    assert f"default-server inter {inter} fall {fall} rise {rise}" in files[HAPROXY_CFG].content
    # slower than the default profile's checks, never faster
    d = PROFILES["default"]
    assert p.check_interval >= d.check_interval and p.check_timeout > d.check_timeout
    assert p.check_timeout * p.check_fall > d.check_timeout * d.check_fall
