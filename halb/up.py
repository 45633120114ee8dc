"""`halb up`: preflight → render → deploy → verify → write-config → install.

Each stage is idempotent, so running `halb up` again resumes: an unchanged deploy does
nothing, an unchanged installer config is not rewritten, and a finished install is only
run again when asked (`--reinstall`). The install record lives next to halb.yaml.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console

from halb import preflight as pf
from halb import probe as pr
from halb.choices import STAGES
from halb.deploy import deploy
from halb.errors import ExitStatus, HalbError
from halb.files import atomic_write
from halb.installers import installer_kind, lb_settings, write_config
from halb.installers.report import headline, install, print_report
from halb.installers.runner import default_log_path
from halb.render import render_cluster
from halb.spec import Cluster
from halb.status import status
from halb.transport import for_host

STATE_FILE = ".halb-state.json"

Say = Callable[[str], None]


class StageState(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class StageResult:
    name: str
    status: StageState
    detail: str = ""
    seconds: float = 0.0
    next_step: str = ""
    exit_status: ExitStatus = ExitStatus.OK
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is StageState.FAILED


class StageFailed(HalbError):
    """A stage ran and failed; says what to do next."""

    def __init__(self, detail: str, next_step: str, status: ExitStatus) -> None:
        super().__init__(detail)
        self.detail = detail
        self.next_step = next_step
        self.exit_status = status


def _state_path(cluster: Cluster) -> Path:
    return cluster.base_dir / STATE_FILE


def read_state(cluster: Cluster) -> dict[str, Any]:
    try:
        data = json.loads(_state_path(cluster).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(cluster: Cluster, state: dict[str, Any]) -> None:
    atomic_write(_state_path(cluster), json.dumps(state, indent=2) + "\n")


class Runner:
    def __init__(
        self,
        cluster: Cluster,
        say: Say,
        *,
        reinstall: bool = False,
        install_log: Path | None = None,
        console: Console,
    ) -> None:
        self.cluster = cluster
        self.say = say
        self.reinstall = reinstall
        self.install_log = install_log
        self.console = console
        self.rendered: dict[str, Any] = {}

    def stages(self) -> dict[str, Callable[[], StageResult]]:
        """Every stage by name, in order."""
        return {
            "preflight": self.preflight,
            "render": self.render,
            "deploy": self.deploy,
            "verify": self.verify,
            "write-config": self.write_config,
            "install": self.install,
        }

    # -- stages ----------------------------------------------------------------

    def preflight(self) -> StageResult:
        results = pf.run_preflight(self.cluster, for_host)
        for r in results:
            if r.level is not pf.Level.OK:
                self.say(f"  {r.level} {r.check} {r.host}: {r.message}")
        status = pf.exit_status(results)
        fails = [r for r in results if r.level is pf.Level.FAIL]
        if fails:
            raise StageFailed(
                "; ".join(f"{r.host}: {r.message}" for r in fails),
                "fix what is named above, then run `halb up` again "
                "(`halb preflight` re-runs only this stage)",
                status,
            )
        return StageResult("preflight", StageState.OK, f"{len(results)} checks passed")

    def render(self) -> StageResult:
        self.rendered = render_cluster(self.cluster)
        n = sum(len(f) for f in self.rendered.values())
        return StageResult(
            "render", StageState.OK, f"{n} files for {len(self.rendered)} LB host(s)"
        )

    def deploy(self) -> StageResult:
        if not self.rendered:
            self.render()
        report = deploy(
            self.cluster,
            self.rendered,
            progress=lambda host, msg: self.say(f"  {host}: {msg}"),
        )
        if not report.ok:
            raise StageFailed(
                "; ".join(f"{r.host}: {r.error}" for r in report.hosts if r.error)
                or (report.vip_error or "deploy failed"),
                "the old configuration is back in place where a host failed; see the message, "
                "then `halb deploy --diff --dry-run` to inspect",
                ExitStatus.CHECK_FAILED,
            )
        return StageResult(
            "deploy",
            StageState.CHANGED if report.changed else StageState.UNCHANGED,
            ", ".join(f"{r.host} {r.status}" for r in report.hosts),
            data=report.as_dict(),
        )

    def verify(self) -> StageResult:
        rep = status(self.cluster)
        if not rep.ok:
            raise StageFailed(
                "; ".join(rep.problems),
                "run `halb status` for the per-host view",
                ExitStatus.CHECK_FAILED,
            )
        results, elapsed = pr.probe(pr.plan_probes(self.cluster))
        summary = pr.summarize(results, elapsed_ms=elapsed, before_install=True)
        for f in summary.frontends:
            self.say(f"  {f.name}: {f.message}")
        if summary.exit_status != ExitStatus.OK:
            raise StageFailed(
                "a frontend does not answer through its VIP",
                "run `halb probe` for the per-backend view",
                ExitStatus.CHECK_FAILED,
            )
        holders = ", ".join(f"{v.name} {v.address} on {', '.join(v.holders)}" for v in rep.vips)
        return StageResult("verify", StageState.OK, holders)

    def write_config(self) -> StageResult:
        ins = self.cluster.spec.installer
        if ins.kind == "command" or ins.config is None:
            return StageResult("write-config", StageState.SKIPPED, "no installer config to write")
        kind, said_by = installer_kind(self.cluster, None)
        path = self.cluster.base_dir / ins.config
        res = write_config(kind, path, lb_settings(self.cluster), said_by=said_by)
        for w in res.warnings:
            self.say(f"  warning: {w}")
        if res.changed:
            detail = f"{res.path} updated (backup {res.backup})"
            return StageResult("write-config", StageState.CHANGED, detail)
        return StageResult(
            "write-config", StageState.UNCHANGED, f"{res.path} already names the VIP"
        )

    def install(self) -> StageResult:
        state = read_state(self.cluster)
        done = state.get("install", {})
        if _install_succeeded(done) and not self.reinstall:
            return StageResult(
                "install",
                StageState.SKIPPED,
                f"installed at {done.get('finished')}; `halb up --reinstall` runs it again",
            )
        if done and not _install_succeeded(done):
            where = f" at stage {done['stage']}" if done.get("stage") else ""
            self.say(f"  the last install {done.get('outcome', 'failed')}{where}: running it again")
        log = self.install_log or default_log_path(self.cluster.base_dir)
        done = install(self.cluster, log, self.console, lambda m: self.say(f"  {m}"))
        result, url, answer = done.result, done.console_url, done.console_answer
        v = result.verdict
        print_report(self.console, result, vip_url=url, vip_answer=answer)
        state["install"] = {
            "outcome": str(v.outcome),
            "exit_code": v.exit_code,
            "stage": v.stage or None,
            "why": v.why,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "log": str(log),
        }
        write_state(self.cluster, state)
        done.raise_if_interrupted()
        if not v.ok:
            advice = f"{v.advice}; then " if v.advice else "fix it, then "
            raise StageFailed(
                headline(result),
                f"{advice}`halb up` resumes at install (read {log})",
                ExitStatus.CHECK_FAILED,
            )
        detail = f"{v.why}; log {log}"
        if url:
            detail += f"; console {url} {answer}"
        data = {
            "console_url": url,
            "console_answer": answer,
            "installer_console_url": v.console_url,
        }
        return StageResult("install", StageState.OK, detail, data=data)


def _install_succeeded(done: dict[str, Any]) -> bool:
    if "outcome" in done:
        return bool(done["outcome"] == "succeeded")
    return done.get("exit_code") == 0  # a record from before outcomes were kept


def run_up(runner: Runner, until: str, on_stage: Callable[[int, str], None]) -> list[StageResult]:
    """Run the stages in order up to `until`; stop at the first failure."""
    last = STAGES.index(until)
    stages = runner.stages()
    results: list[StageResult] = []
    for i, name in enumerate(STAGES[: last + 1]):
        on_stage(i, name)
        start = time.monotonic()
        try:
            res = stages[name]()
        except StageFailed as e:
            res = StageResult(
                name, StageState.FAILED, e.detail, next_step=e.next_step, exit_status=e.exit_status
            )
        except HalbError as e:
            res = StageResult(
                name,
                StageState.FAILED,
                str(e),
                next_step="fix it, then `halb up` again",
                exit_status=e.exit_status,
            )
        res.seconds = round(time.monotonic() - start, 2)
        results.append(res)
        if res.failed:
            break
    return results
