"""Drain and undrain: the pure decisions, the flag in the check script and in status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from halb.cli import app
from halb.drain import judge
from halb.drain.flag import DRAIN_FLAG
from halb.errors import InputError
from halb.facts.ipaddr import IfAddr
from halb.facts.lbstate import LbFacts, facts_from_output
from halb.render import CHECK_SCRIPT, KEEPALIVED_CONF, render_cluster
from halb.spec import load_cluster
from halb.status import FrontendRef, VipRef, assess, render_text

CASES = Path(__file__).parent.parent / "golden" / "cases"
VIPS = [
    VipRef("internal", "10.0.0.253", "halb_internal"),
    VipRef("external", "10.0.0.254", "halb_external"),
]
PRIOS = {"internal": {"lb1": 254, "lb2": 252}, "external": {"lb1": 254, "lb2": 252}}


def facts(host: str, holds: bool = False, *, drained: bool = False, **kw: object) -> LbFacts:
    addrs = tuple(IfAddr("eth0", "inet", v.address, 24, "eth0:halb0") for v in VIPS if holds)
    state = "MASTER" if holds else "BACKUP"
    args: dict[str, object] = {
        "haproxy_pid": 10,
        "keepalived_pid": 11,
        "vrrp": {v.instance: state for v in VIPS},
        **kw,
    }
    return LbFacts(host, addrs=addrs, drained=drained, **args)  # type: ignore[arg-type]


def report(*f: LbFacts) -> judge.StatusReport:
    return assess(list(f), VIPS, [FrontendRef("console", "external", ())])


# ------------------------------------------------------------------------ the target


def test_an_lb_host_is_a_valid_target() -> None:
    judge.check_target("lb2", ["lb1", "lb2"], ["lb1", "lb2", "m1"])


def test_a_host_that_is_no_lb_host_is_bad_input_naming_the_lb_hosts() -> None:
    with pytest.raises(InputError, match=r"host m1: not an LB host \(LB hosts: lb1, lb2\)"):
        judge.check_target("m1", ["lb1", "lb2"], ["lb1", "lb2", "m1"])


def test_an_unknown_host_gets_the_nearest_lb_host() -> None:
    with pytest.raises(InputError, match="host lb-1: not in the inventory; did you mean 'lb1'"):
        judge.check_target("lb-1", ["lb1", "lb2"], ["lb1", "lb2"])


def test_drain_refuses_nopreempt_but_undrain_does_not() -> None:
    with pytest.raises(InputError, match=r"vrrp\.nopreempt"):
        judge.check_preempt("drain", True)
    judge.check_preempt("undrain", True)
    judge.check_preempt("drain", False)


# ---------------------------------------------------------------- last healthy holder


def test_drain_is_allowed_while_a_healthy_peer_remains() -> None:
    assert judge.refusal(report(facts("lb1", True), facts("lb2")), "lb1") is None


@pytest.mark.parametrize(
    ("peer", "why"),
    [
        (facts("lb2", drained=True), "lb2 is drained"),
        (facts("lb2", haproxy_pid=None), "lb2 has no HAProxy"),
        (facts("lb2", keepalived_pid=None), "lb2 has no keepalived"),
        (LbFacts("lb2", error="ssh refused"), "lb2 is unreachable"),
    ],
)
def test_drain_is_refused_when_no_peer_could_take_over(peer: LbFacts, why: str) -> None:
    reason = judge.refusal(report(facts("lb1", True), peer), "lb1")
    assert reason is not None
    assert reason == f"no healthy peer would take the VIPs from lb1 ({why})"


def test_the_only_lb_host_cannot_be_drained() -> None:
    assert "only LB host" in (judge.refusal(report(facts("lb1", True)), "lb1") or "")


# ------------------------------------------------------------------------- progress


def test_drain_is_done_only_when_flagged_off_host_and_one_peer_holds_each_vip() -> None:
    not_yet = judge.drain_progress(report(facts("lb1", True), facts("lb2")), "lb1")
    assert not not_yet.done and "drain flag" in not_yet.waiting_for
    pending = judge.drain_progress(report(facts("lb1", True, drained=True), facts("lb2")), "lb1")
    assert not pending.done and "take VIP internal" in pending.waiting_for
    both = report(facts("lb1", True, drained=True), facts("lb2", True))
    assert not judge.drain_progress(both, "lb1").done
    nobody = report(facts("lb1", drained=True), facts("lb2"))
    assert "exactly one holder" in judge.drain_progress(nobody, "lb1").waiting_for
    done = judge.drain_progress(report(facts("lb1", drained=True), facts("lb2", True)), "lb1")
    assert done.done


def test_undrain_waits_for_the_top_host_to_take_its_vips_back() -> None:
    mid = report(facts("lb1"), facts("lb2", True))
    p = judge.undrain_progress(mid, "lb1", PRIOS, preempt=True)
    assert not p.done and p.waiting_for == "lb1 to take VIP internal back (held by lb2)"
    assert judge.undrain_progress(mid, "lb1", PRIOS, preempt=False).done
    back = report(facts("lb1", True), facts("lb2"))
    assert judge.undrain_progress(back, "lb1", PRIOS, preempt=True).done


def test_undrain_of_a_lower_host_needs_no_move_and_waits_while_flagged() -> None:
    r = report(facts("lb1", True), facts("lb2"))
    assert judge.undrain_progress(r, "lb2", PRIOS, preempt=True).done
    flagged = report(facts("lb1", True), facts("lb2", drained=True))
    assert not judge.undrain_progress(flagged, "lb2", PRIOS, preempt=True).done


def test_undrain_waits_while_the_host_is_in_fault() -> None:
    sick = facts("lb1", vrrp={"halb_internal": "FAULT", "halb_external": "BACKUP"})
    r = report(sick, facts("lb2", True))
    p = judge.undrain_progress(r, "lb1", PRIOS, preempt=True)
    assert not p.done and "halb_internal=FAULT" in p.waiting_for


def test_expected_holders_skip_drained_and_sick_hosts() -> None:
    r = report(facts("lb1", drained=True), facts("lb2", True))
    assert judge.expected_holders(r, PRIOS) == {"internal": "lb2", "external": "lb2"}
    r = report(facts("lb1", drained=True), facts("lb2", haproxy_pid=None))
    assert judge.expected_holders(r, PRIOS) == {"internal": None, "external": None}


# ----------------------------------------------------------------------- the flag


def test_the_flag_lives_next_to_the_check_script_keepalived_runs() -> None:
    cluster = load_cluster(CASES / "ks-guide" / "halb.yaml")
    files = render_cluster(cluster)["lb1"]
    conf = files[KEEPALIVED_CONF].content
    assert f'script "{CHECK_SCRIPT}"' in conf and f'script "{CHECK_SCRIPT} drained"' in conf
    assert str(Path(CHECK_SCRIPT).parent / "drained") == DRAIN_FLAG
    assert DRAIN_FLAG.startswith("/etc/keepalived/halb/")


def _trace(script: Path, *args: str) -> tuple[int, str]:
    r = subprocess.run(["sh", "-x", str(script), *args], capture_output=True, text=True, timeout=10)
    return r.returncode, r.stderr


def test_check_script_reports_drained_only_when_the_flag_is_next_to_it(tmp_path: Path) -> None:
    cluster = load_cluster(CASES / "ks-guide" / "halb.yaml")
    body = render_cluster(cluster)["lb1"][CHECK_SCRIPT].content
    script = tmp_path / "check_haproxy.sh"
    script.write_text(body)
    rc, trace = _trace(script, "drained")
    assert rc == 0 and "pidfile=" not in trace  # the drain check looks at the flag only
    (tmp_path / "drained").write_text("2026-01-01T00:00:00Z\n")
    rc, trace = _trace(script, "drained")
    assert rc == 1
    assert f"[ -e {tmp_path}/drained ]" in trace
    # the HAProxy check ignores the flag: a drained host is healthy, only outranked
    _, trace = _trace(script)
    assert "pidfile=/run/haproxy.pid" in trace and "drained ]" not in trace.split("pidfile")[1]


def test_haproxy_down_is_a_fault_and_a_drain_is_a_weight() -> None:
    """A dead HAProxy gives the VIP up at once (FAULT: priority-0 advert); a drained host
    only falls below every peer, so it still holds a VIP when no peer is left."""
    for case, fall in (("ks-guide", 2), ("fast-profile", 1)):
        cluster = load_cluster(CASES / case / "halb.yaml")
        conf = render_cluster(cluster)[cluster.lb_host_names[0]][KEEPALIVED_CONF].content
        blocks = conf.split("vrrp_script ")
        chk = next(b for b in blocks if b.startswith("chk_haproxy {"))
        drained = next(b for b in blocks if b.startswith("chk_drained {"))
        assert "weight" not in chk.split("}")[0] and f"fall {fall}\n" in chk
        assert f"weight {cluster.track_weight}\n" in drained and "fall 1\n" in drained


# ------------------------------------------------------------------------- status


def test_status_reads_the_flag_and_shows_the_host_drained() -> None:
    out = "@@ip\n@@stat\n@@drained\n@@end\n"
    assert facts_from_output("lb1", out).drained
    assert not facts_from_output("lb1", "@@ip\n@@stat\n@@end\n").drained
    r = report(facts("lb1", drained=True), facts("lb2", True))
    lines = render_text(r)
    assert lines[0].startswith("lb1 (drained): ")
    assert lines[1].startswith("lb2: ")
    doc = r.as_dict()
    assert [h["drained"] for h in doc["hosts"]] == [True, False]


def test_status_notes_a_drained_host_that_still_holds_a_vip() -> None:
    r = report(facts("lb1", True, drained=True), facts("lb2"))
    assert "lb1: drained but still holds 10.0.0.253" in r.notes


# ---------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("master1", "host master1: not an LB host (LB hosts: lb1, lb2)"),
        ("lb-1", "host lb-1: not in the inventory; did you mean 'lb1'?"),
    ],
)
def test_cli_bad_host_is_exit_2_before_any_host_is_contacted(host: str, message: str) -> None:
    for cmd in ("drain", "undrain"):
        r = CliRunner().invoke(app, [cmd, host, "-c", str(CASES / "ks-guide" / "halb.yaml")])
        assert r.exit_code == 2, r.output
        assert message in r.output
        assert "Traceback" not in r.output


def test_cli_drain_with_nopreempt_is_exit_2_naming_the_key() -> None:
    r = CliRunner().invoke(app, ["drain", "lb1", "-c", str(CASES / "fast-profile" / "halb.yaml")])
    assert r.exit_code == 2
    assert "halb.yaml: vrrp.nopreempt" in r.output
