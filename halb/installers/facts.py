"""What each installer asks and prints, as read from its own source, per version.

The launcher answers the prompts listed here and nothing else; the watcher judges the
install from the markers (stage, failure, success) and the exit code together, because
some installers exit 0 after a failure. Each fact names the file it was read from.

KubeSphere 2.1, `scripts/install.sh` (ks-installer v2.1):
- `base_check` runs first: not root -> prints "Please install KubeSphere using the root
  user !" and `exit 0`; Ubuntu 18.04 with apt.systemd.daily running -> "Apt program is
  occupied. Please try again later !" and `exit 0`.
- `install.sh multi-node` skips the menu; without an argument it clears the screen, shows
  the menu and loops on `read -p "Please input an option: "` (1 all-in-one, 2 multi-node,
  3 quit: "quit successsful!!"); an unknown argument prints "failed!,Parameter is wrong"
  and exits 0.
- `storage_sure` clears the screen, prints the prerequisites and loops on
  `read -p "Please ensure that your environment has met the above requirements  (yes/no) "`
  until the answer is exactly `yes` or `no`; `no` prints "Please reprepare the machines
  ..." and exits 0. bash shows a `read -p` prompt only when stdin is a terminal, and at
  end of input `read` fails at once and the loop spins: halb runs it on a terminal of its
  own (a pty) and answers when the prompt shows.
- `os/install.tmp` and `python os/precheck.py` are relative to the working directory; the
  docs run `cd scripts && ./install.sh`. Elsewhere the precheck is skipped without a word.
- Three stages, each an `ansible-playbook` run announced by "1. Initiating Environment",
  "2. Installing Kubernetes", "3. Installing KubeSphere"; after each, "successsful!" (sic)
  or `failed_prompt`: "failed!" then a bare `exit` (status 0).
- After stage 3, `result_notes` polls `kubectl exec ... kubesphere_running` for up to
  1200 s ("Please wait for the installation to complete" with a carriage return) and
  prints that file: the "Welcome to KubeSphere!" banner with "Console: http://NODE:30880"
  and the account. If it never appears the script ends, status 0, without the banner.

KubeKey 1.x (`apiVersion: kubekey.kubesphere.io/v1alpha1`), `kk create cluster -f F`:
`-y/--yes` "Skip pre-check of the installation" (the check table and the question);
success logs "Congratulations! Installation is successful."; errors exit 1.
KubeKey 2.x-3.x (`v1alpha2`): `--yes` skips the confirm check; without it the precheck asks
"Continue this installation? [yes/no]: " (`reader.ReadString`; at end of input
`logger.Fatal`, exit 1; "no" exits 0). Each module logs "[NameModule] description"; the
pipeline ends with "Pipeline[CreateClusterPipeline] execute successfully" or returns
"Pipeline[CreateClusterPipeline] execute failed: ..." (exit 1).
KubeKey v4 (`kubekey.kubesphere.io/v1`, `kind: Config`): `kk create cluster -i
inventory.yaml -c config.yaml` (without `-i` it installs on the local machine only); the
pipeline logs "[Pipeline NAME] start" and "[Pipeline NAME] finish. total: N,success: N,
ignored: N,failed: N".

Kubespray (`ansible-playbook -i INVENTORY cluster.yml -b`): asks nothing unless told to
(`-k`, `-K`, vault files, an SSH host key to confirm); each play prints "PLAY [name] ***";
"PLAY RECAP" lists every host with `unreachable=N failed=N`; exit 2 when a host failed,
4 when one was unreachable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Mark(StrEnum):
    STAGE = "stage"  # a stage begins; group "name" (or the whole match) names it
    STAGE_OK = "stage-ok"  # the current stage succeeded
    FAILED = "failed"  # the install failed in the current stage
    REFUSED = "refused"  # the installer refused to start (the line says why)
    SUCCEEDED = "succeeded"  # the installer's own success line
    CONSOLE = "console"  # the console address it printed; group "url"
    WHY = "why"  # a line that says why something failed (kept for the report)
    RECAP = "recap"  # an Ansible PLAY RECAP host line; groups host, unreachable, failed


@dataclass(frozen=True)
class Marker:
    mark: Mark
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Prompt:
    """A question the installer asks; `answer` None means halb must not answer it."""

    name: str
    pattern: re.Pattern[str]  # matched at the end of the visible text
    answer: str | None
    advice: str = ""  # what the user should do when halb cannot answer


@dataclass(frozen=True)
class InstallerFacts:
    title: str
    prompts: tuple[Prompt, ...] = ()
    markers: tuple[Marker, ...] = ()
    stages: tuple[str, ...] = ()  # the stages it announces, in order (empty: not known ahead)
    # Exit 0 is success only with a SUCCEEDED marker (and every known stage passed).
    needs_success_line: bool = False
    needs_recap: bool = False  # Ansible: success needs a PLAY RECAP without a failed host


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _m(mark: Mark, text: str) -> Marker:
    return Marker(mark, _re(text))


_ANSIBLE_WHY = (
    _m(Mark.WHY, r"^(fatal|failed): \[[^\]]+\]"),
    _m(Mark.WHY, r"^ERROR! "),
    _m(Mark.WHY, r"FAILED! =>"),
)
_RECAP = _m(
    Mark.RECAP,
    r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
)
_ANSIBLE_PROMPTS = (
    Prompt(
        "the become (sudo) password",
        _re(r"BECOME password:\s*$"),
        None,
        "give it in the inventory (ansible_become_pass) or allow passwordless sudo",
    ),
    Prompt(
        "the SSH password",
        _re(r"SSH password:\s*$"),
        None,
        "use SSH keys or ansible_ssh_pass in the inventory",
    ),
    Prompt(
        "a vault password",
        _re(r"Vault password[^:]*:\s*$"),
        None,
        "pass --vault-password-file in installer.command",
    ),
    Prompt(
        "an SSH host key confirmation",
        _re(r"\(yes/no(/\[fingerprint\])?\)\?\s*$"),
        None,
        "add the hosts' keys to known_hosts first (ssh-keyscan), or set host_key_checking",
    ),
)

KUBESPHERE_STAGES = ("Initiating Environment", "Installing Kubernetes", "Installing KubeSphere")

KUBESPHERE_21 = InstallerFacts(
    title="KubeSphere 2.1 scripts/install.sh",
    prompts=(
        Prompt(
            "the prerequisites question",
            _re(
                r"Please ensure that your environment has met the above requirements\s+"
                r"\(yes/no\)\s*$"
            ),
            "yes",
        ),
        Prompt("the installer menu", _re(r"Please input an option:\s*$"), "2"),
        *_ANSIBLE_PROMPTS,
    ),
    markers=(
        _m(Mark.STAGE, r"^\s*[123]\. (?P<name>" + "|".join(KUBESPHERE_STAGES) + r")\s*$"),
        _m(Mark.STAGE_OK, r"^\s*succe+s+ful!\s*$"),
        _m(Mark.REFUSED, r"failed!,Parameter is wrong.*"),
        _m(Mark.FAILED, r"^\s*failed!\s*$"),
        _m(Mark.REFUSED, r"Please install KubeSphere using the root user !"),
        _m(Mark.REFUSED, r"Apt program is occupied\. Please try again later !"),
        _m(Mark.REFUSED, r"Please reprepare the machines meeting the above requirements.*"),
        _m(Mark.REFUSED, r"quit succe+s+ful!+"),
        _m(Mark.SUCCEEDED, r"Welcome to KubeSphere!"),
        _m(Mark.CONSOLE, r"^\s*Console:\s*(?P<url>https?://\S+)"),
        *_ANSIBLE_WHY,
    ),
    stages=KUBESPHERE_STAGES,
    needs_success_line=True,
)

KUBEKEY = InstallerFacts(
    title="KubeKey 1.x-3.x kk create cluster",
    prompts=(
        Prompt(
            "KubeKey's confirmation", _re(r"Continue this installation\? \[yes/no\]:\s*$"), "yes"
        ),
    ),
    markers=(
        _m(Mark.STAGE, r"^\d\d:\d\d:\d\d \S+ \[(?P<module>\w+)Module\] (?P<name>.+?)\s*$"),
        _m(Mark.FAILED, r"Pipeline\[\w+\] execute failed.*"),
        _m(Mark.SUCCEEDED, r"Pipeline\[CreateClusterPipeline\] execute successfully"),
        _m(Mark.SUCCEEDED, r"Congratulations! Installation is successful\."),
        _m(Mark.WHY, r"(?i)^(error|fatal|ERRO|FATA)\b.*"),
        _m(Mark.WHY, r"Failed to .*"),
    ),
    needs_success_line=True,
)

_V4_FINISH = r"\] finish\. total: ?\d+, ?success: ?\d+, ?ignored: ?\d+, ?failed: ?"

KUBEKEY_V4 = InstallerFacts(
    title="KubeKey v4 kk create cluster",
    prompts=KUBEKEY.prompts,
    markers=(
        _m(Mark.STAGE, r"\[Pipeline (?P<name>[^\]]+)\] start"),
        _m(Mark.FAILED, _V4_FINISH + r"[1-9]"),
        _m(Mark.SUCCEEDED, _V4_FINISH + r"0\b"),
        *_ANSIBLE_WHY,
        _m(Mark.WHY, r"(?i)^(error|fatal)\b.*"),
    ),
    needs_success_line=True,
)

KUBESPRAY = InstallerFacts(
    title="Kubespray ansible-playbook cluster.yml",
    prompts=_ANSIBLE_PROMPTS,
    markers=(_m(Mark.STAGE, r"^PLAY \[(?P<name>.*?)\] \*"), _RECAP, *_ANSIBLE_WHY),
    needs_recap=True,
)

COMMAND = InstallerFacts(title="installer command")


def facts_for(kind: str, *, kubekey_v4: bool = False) -> InstallerFacts:
    if kind == "kubesphere":
        return KUBESPHERE_21
    if kind == "kubekey":
        return KUBEKEY_V4 if kubekey_v4 else KUBEKEY
    if kind == "kubespray":
        return KUBESPRAY
    return COMMAND
