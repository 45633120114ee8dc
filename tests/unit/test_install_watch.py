"""The installer watcher on captured output: stages, answers, stops and verdicts (pure)."""

from __future__ import annotations

import pytest

from halb.installers import facts
from halb.installers.watch import Answer, Outcome, StageStarted, Stop, Watcher

PREREQ = "Please ensure that your environment has met the above requirements  (yes/no) "

KS_OK = [
    "Prerequisites:",
    "*********************************************",
    "1. Initiating Environment",
    "*********************************************",
    "PLAY RECAP *****",
    "master1                    : ok=12   changed=3    unreachable=0    failed=0",
    "successsful!",
    "2. Installing Kubernetes",
    "successsful!",
    "3. Installing KubeSphere",
    "successsful!",
    "The ks-installer is running",
    "###              Welcome to KubeSphere!           ###",
    "Console: http://192.168.0.2:30880",
    "Account: admin",
]


def feed(w: Watcher, lines: list[str]) -> list[object]:
    events: list[object] = []
    for i, line in enumerate(lines):
        events += w.line(line, float(i))
    return events


def test_kubesphere_success_needs_every_stage_and_the_banner() -> None:
    w = Watcher(facts.KUBESPHERE_21)
    events = feed(w, KS_OK)
    assert [e.name for e in events if isinstance(e, StageStarted)] == list(facts.KUBESPHERE_STAGES)
    v = w.verdict(0, 100.0)
    assert v.outcome is Outcome.SUCCEEDED
    assert v.console_url == "http://192.168.0.2:30880"
    assert [s.ok for s in v.stages] == [True, True, True]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_kubesphere_failed_stage_with_exit_0_is_a_failure_naming_stage_and_line(
    stage: int,
) -> None:
    cut = KS_OK.index(f"{stage}. {facts.KUBESPHERE_STAGES[stage - 1]}") + 1
    lines = [
        *KS_OK[:cut],
        'fatal: [master1]: FAILED! => {"msg": "Timeout waiting for etcd"}',
        "failed!",
        "please refer to https://kubesphere.io/docs/v2.1/zh-CN/faq/faq-install/",
    ]
    w = Watcher(facts.KUBESPHERE_21)
    feed(w, lines)
    v = w.verdict(0, 50.0)  # the script's bare `exit` after failed!
    assert v.outcome is Outcome.FAILED
    assert v.stage == f"{stage}/3 {facts.KUBESPHERE_STAGES[stage - 1]}"
    assert "Timeout waiting for etcd" in v.why
    assert v.stages[-1].ok is False


@pytest.mark.parametrize(
    "line",
    [
        "Please install KubeSphere using the root user !",
        "Apt program is occupied. Please try again later !",
        "failed!,Parameter is wrong , Please check parameter is one or all",
        "Please reprepare the machines meeting the above requirements, then restart",
        "quit successsful!!",
    ],
)
def test_kubesphere_refusals_exit_0_and_still_fail(line: str) -> None:
    w = Watcher(facts.KUBESPHERE_21)
    feed(w, [line])
    v = w.verdict(0, 1.0)
    assert v.outcome is Outcome.FAILED
    assert line.split("!")[0] in v.why


def test_kubesphere_without_banner_says_ks_installer_did_not_report_running() -> None:
    w = Watcher(facts.KUBESPHERE_21)
    feed(w, KS_OK[: KS_OK.index("The ks-installer is running") + 1])
    v = w.verdict(0, 1300.0)
    assert v.outcome is Outcome.FAILED
    assert "never printed its 'Welcome' banner" in v.why


def test_kubesphere_ending_early_with_exit_0_is_a_failure() -> None:
    w = Watcher(facts.KUBESPHERE_21)
    feed(w, KS_OK[:7])
    v = w.verdict(0, 10.0)
    assert v.outcome is Outcome.FAILED
    assert "'Installing Kubernetes' never started" in v.why


def test_a_prompt_is_answered_once_per_showing_and_its_echo_is_not_a_new_question() -> None:
    w = Watcher(facts.KUBESPHERE_21)
    first = w.partial(PREREQ, 0.0)
    assert first == [Answer(facts.KUBESPHERE_21.prompts[0], "yes")]
    assert w.partial(PREREQ + "y", 0.1) == []  # the echo arriving
    assert w.line(PREREQ + "yes", 0.2) == []  # the prompt's own line
    assert w.asked == {"the prerequisites question": 1}


def test_a_prompt_that_keeps_coming_back_stops_the_install() -> None:
    w = Watcher(facts.KUBESPHERE_21)
    events: list[object] = []
    for i in range(5):
        events += w.partial(PREREQ, float(i))
        events += w.line(PREREQ + "yes", float(i))
    answers = [e for e in events if isinstance(e, Answer)]
    stops = [e for e in events if isinstance(e, Stop)]
    assert len(answers) == 3
    assert stops and "4 times" in stops[0].reason and "'yes'" in stops[0].reason
    v = w.verdict(None, 5.0, stop=stops[0])
    assert v.outcome is Outcome.STOPPED
    assert "met the above requirements" in v.why


@pytest.mark.parametrize(
    ("prompt", "name"),
    [
        ("BECOME password: ", "the become (sudo) password"),
        ("SSH password: ", "the SSH password"),
        ("Vault password (default): ", "a vault password"),
        (
            "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
            "an SSH host key confirmation",
        ),
    ],
)
def test_questions_halb_must_not_answer_stop_at_once_with_advice(prompt: str, name: str) -> None:
    w = Watcher(facts.KUBESPHERE_21)
    (stop,) = w.partial(prompt, 0.0)
    assert isinstance(stop, Stop)
    assert name in stop.reason and stop.advice


def test_waiting_for_an_unknown_prompt_names_it() -> None:
    stop = Watcher(facts.COMMAND).waiting("Enter the registry password: ")
    assert "'Enter the registry password:'" in stop.reason


KK_OK = [
    "This is a simple check of your environment.",
    "13:39:26 CST [GreetingsModule] Greetings",
    "13:39:27 CST success: [node1]",
    "13:40:01 CST [InitKubernetesModule] Init cluster using kubeadm",
    "13:41:02 CST Pipeline[CreateClusterPipeline] execute successfully",
    "Installation is complete.",
]


def test_kubekey_stages_and_success_line() -> None:
    w = Watcher(facts.KUBEKEY)
    events = feed(w, KK_OK)
    assert [e.name for e in events if isinstance(e, StageStarted)] == [
        "Greetings",
        "Init cluster using kubeadm",
    ]
    assert w.verdict(0, 9.0).ok


def test_kubekey_1x_success_line_and_a_missing_one() -> None:
    w = Watcher(facts.KUBEKEY)
    feed(w, ["INFO[00:40:00 CST] Congratulations! Installation is successful."])
    assert w.verdict(0, 1.0).ok
    w = Watcher(facts.KUBEKEY)
    feed(w, KK_OK[:3])
    v = w.verdict(0, 1.0)
    assert not v.ok and "success line" in v.why


def test_kubekey_failure_names_the_module_and_line() -> None:
    w = Watcher(facts.KUBEKEY)
    feed(
        w,
        [
            *KK_OK[:4],
            'Failed to exec command: sudo -E /bin/bash -c "kubeadm init": exit status 1',
            "error: Pipeline[CreateClusterPipeline] execute failed: Module[InitKubernetesModule]",
        ],
    )
    v = w.verdict(1, 9.0)
    assert v.outcome is Outcome.FAILED
    assert v.stage == "Init cluster using kubeadm"
    assert "kubeadm init" in v.why


def test_kubekey_v4_finish_line() -> None:
    ok = (
        "I1206 10:00:00 [Pipeline default/create-cluster] finish. "
        "total: 120,success: 120,ignored: 0,failed: 0"
    )
    bad = ok.replace("success: 120", "success: 119").replace("failed: 0", "failed: 1")
    w = Watcher(facts.KUBEKEY_V4)
    feed(w, ["[Pipeline default/create-cluster] start", ok])
    assert w.verdict(0, 1.0).ok
    w = Watcher(facts.KUBEKEY_V4)
    feed(w, ["[Pipeline default/create-cluster] start", bad])
    assert w.verdict(0, 1.0).outcome is Outcome.FAILED


def test_kubespray_recap_judges_hosts() -> None:
    lines = [
        "PLAY [Install etcd] *********",
        'fatal: [node2]: FAILED! => {"msg": "etcd did not start"}',
        "PLAY RECAP *********",
        "node1                      : ok=3    changed=1    unreachable=0    failed=0    skipped=0",
        "node2                      : ok=2    changed=1    unreachable=0    failed=1    skipped=0",
    ]
    w = Watcher(facts.KUBESPRAY)
    feed(w, lines)
    v = w.verdict(2, 1.0)
    assert v.outcome is Outcome.FAILED and "etcd did not start" in v.why
    assert v.stage == "Install etcd"  # where it failed, not the last play
    w = Watcher(facts.KUBESPRAY)
    feed(w, [lines[0], *lines[2:4]])
    assert w.verdict(0, 1.0).ok
    w = Watcher(facts.KUBESPRAY)
    feed(w, ["PLAY [x] ***"])
    assert "no PLAY RECAP" in w.verdict(0, 1.0).why  # exit 0 without a recap


def test_unreachable_host_in_recap_fails_even_with_exit_0() -> None:
    w = Watcher(facts.KUBESPRAY)
    feed(w, ["PLAY RECAP ***", "node3 : ok=0    changed=0    unreachable=1    failed=0"])
    v = w.verdict(0, 1.0)
    assert v.outcome is Outcome.FAILED and "node3" in v.why


def test_interrupted_and_generic_commands() -> None:
    w = Watcher(facts.COMMAND)
    assert w.verdict(130, 1.0, interrupted=True).outcome is Outcome.INTERRUPTED
    assert Watcher(facts.COMMAND).verdict(0, 1.0).ok
    assert not Watcher(facts.COMMAND).verdict(3, 1.0).ok
