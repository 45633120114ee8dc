"""Follow an installer's output: its stages, the prompts to answer, and the verdict.

Pure: the runner feeds visible text (ANSI removed) with timestamps and acts on the events.
A prompt is answered once per time it shows; a prompt halb has no answer for, or one that
keeps coming back after the answer, stops the install instead of letting it spin.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from halb.installers.facts import InstallerFacts, Mark, Prompt

MAX_ANSWERS = 3  # the same question answered this often and asked again: not accepted


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # halb stopped it: it waited for input halb cannot give
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StageRecord:
    name: str
    started: float
    ended: float | None = None
    ok: bool | None = None  # None: still running, or ended without a word


@dataclass(frozen=True)
class StageStarted:
    index: int  # 1-based
    name: str
    at: float


@dataclass(frozen=True)
class Answer:
    prompt: Prompt
    text: str  # without the newline


@dataclass(frozen=True)
class Stop:
    reason: str
    advice: str = ""


Event = StageStarted | Answer | Stop


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    exit_code: int | None
    why: str  # one line: the installer's own line where there is one
    stage: str = ""  # the stage that failed or was running ("" when none is known)
    advice: str = ""
    console_url: str = ""  # the address the installer printed
    stages: tuple[StageRecord, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCEEDED


@dataclass
class Watcher:
    facts: InstallerFacts
    max_answers: int = MAX_ANSWERS
    stages: list[StageRecord] = field(default_factory=list)
    asked: dict[str, int] = field(default_factory=dict)
    refused: str = ""
    failed_line: str = ""
    failed_stage: str = ""
    why: str = ""
    why_stage: str = ""  # the stage the first such line came in
    succeeded: bool = False
    console_url: str = ""
    recap_seen: bool = False
    bad_hosts: list[str] = field(default_factory=list)
    _answered_partial: bool = False

    # -- input -----------------------------------------------------------------

    def partial(self, text: str, now: float) -> list[Event]:
        """The text shown after the last newline (a prompt waits there)."""
        if self._answered_partial:
            return []
        event = self._prompt(text)
        if event is not None:
            self._answered_partial = True
            return [event]
        return []

    def line(self, text: str, now: float) -> list[Event]:
        """A complete line of visible text."""
        events: list[Event] = []
        if self._answered_partial:
            self._answered_partial = False  # the prompt's own line, with the echoed answer
        else:
            event = self._prompt(text)
            if event is not None:
                events.append(event)
        events.extend(self._markers(text.strip(), now))
        return events

    def waiting(self, shown: str) -> Stop:
        """The installer waits for input no prompt fact covers."""
        what = shown.strip() or "(nothing on screen)"
        return Stop(
            f"the installer waits for input halb has no answer for: {what!r}",
            "answer it once by hand (run the installer yourself), or report the prompt",
        )

    # -- judgement -------------------------------------------------------------

    @property
    def current(self) -> StageRecord | None:
        return self.stages[-1] if self.stages else None

    def stage_label(self, rec: StageRecord | None = None) -> str:
        rec = rec or self.current
        if rec is None:
            return ""
        i = self.stages.index(rec) + 1
        n = len(self.facts.stages)
        return f"{i}/{n} {rec.name}" if n and i <= n else rec.name

    def verdict(
        self,
        exit_code: int | None,
        now: float,
        *,
        stop: Stop | None = None,
        interrupted: bool = False,
    ) -> Verdict:
        self._close(now, ok=None)
        base = Verdict(
            Outcome.SUCCEEDED,
            exit_code,
            why=self._success_words(exit_code),
            console_url=self.console_url,
            stages=tuple(self.stages),
        )
        label = self.stage_label()
        if interrupted:
            return replace(base, outcome=Outcome.INTERRUPTED, why="interrupted", stage=label)
        if stop is not None:
            return replace(
                base, outcome=Outcome.STOPPED, why=stop.reason, stage=label, advice=stop.advice
            )
        fail = self._failure(exit_code)
        if fail is not None:
            return replace(base, outcome=Outcome.FAILED, why=fail[0], stage=fail[1])
        return base

    def _failure(self, exit_code: int | None) -> tuple[str, str] | None:
        if self.refused:
            return f"the installer refused to start: {self.refused}", ""
        if self.failed_line:
            return self.why or self.failed_line, self.failed_stage
        if self.bad_hosts:
            hosts = ", ".join(self.bad_hosts)
            return (self.why or f"PLAY RECAP: {hosts}"), self.why_stage or self.stage_label()
        if exit_code is None or exit_code != 0:
            said = f"exit code {exit_code}" if exit_code is not None else "no exit code"
            return (
                f"{self.why} ({said})" if self.why else f"the installer ended with {said}",
                self.stage_label(),
            )
        missing = [s for s in self.facts.stages if s not in {r.name for r in self.stages}]
        if self.facts.stages and missing:
            return (
                f"exit code 0, but stage {missing[0]!r} never started "
                "(the installer stopped early)",
                self.stage_label(),
            )
        if self.facts.needs_success_line and not self.succeeded:
            return self._no_success_line(), self.stage_label()
        if self.facts.needs_recap and not self.recap_seen:
            return "exit code 0, but no PLAY RECAP (the playbook did not run to its end)", ""
        return None

    def _no_success_line(self) -> str:
        if self.facts.stages:
            return (
                "every stage passed, but the installer never printed its 'Welcome' banner: "
                "KubeSphere did not report running within the installer's wait (1200 s); "
                "look at the ks-installer pod's logs"
            )
        return "exit code 0, but the installer never printed its success line"

    def _success_words(self, exit_code: int | None) -> str:
        if self.facts.stages:
            return f"all {len(self.facts.stages)} stages passed"
        if self.recap_seen:
            return "PLAY RECAP: no host failed or unreachable"
        return f"exit code {exit_code}"

    # -- internals -------------------------------------------------------------

    def _prompt(self, text: str) -> Event | None:
        shown = text.rstrip("\r")
        for p in self.facts.prompts:
            if not p.pattern.search(shown):
                continue
            n = self.asked.get(p.name, 0) + 1
            self.asked[p.name] = n
            question = shown.strip()
            if p.answer is None:
                return Stop(f"the installer asks for {p.name}: {question!r}", p.advice)
            if n > self.max_answers:
                return Stop(
                    f"the installer asked {question!r} {n} times; halb answered "
                    f"{p.answer!r} each time and it did not go on",
                    "run the installer by hand once to see what it expects",
                )
            return Answer(p, p.answer)
        return None

    def _markers(self, text: str, now: float) -> list[Event]:
        events: list[Event] = []
        for m in self.facts.markers:
            found = m.pattern.search(text)
            if found is None:
                continue
            groups = found.groupdict()
            if m.mark is Mark.STAGE:
                name = (groups.get("name") or found.group(0)).strip()
                self._close(now, ok=True)
                self.stages.append(StageRecord(name, now))
                events.append(StageStarted(len(self.stages), name, now))
            elif m.mark is Mark.STAGE_OK:
                self._close(now, ok=True)
            elif m.mark is Mark.FAILED:
                self.failed_line = self.failed_line or text
                self.failed_stage = self.failed_stage or self.stage_label()
                self._close(now, ok=False)
            elif m.mark is Mark.REFUSED:
                self.refused = self.refused or found.group(0).strip()
            elif m.mark is Mark.SUCCEEDED:
                self.succeeded = True
            elif m.mark is Mark.CONSOLE:
                self.console_url = groups.get("url") or ""
            elif m.mark is Mark.WHY:
                self.why = text
                self.why_stage = self.why_stage or self.stage_label()
            elif m.mark is Mark.RECAP:
                self.recap_seen = True
                if int(groups["failed"]) or int(groups["unreachable"]):
                    self.bad_hosts.append(
                        f"{groups['host']} failed={groups['failed']} "
                        f"unreachable={groups['unreachable']}"
                    )
            break  # one marker per line: the first that matches
        return events

    def _close(self, now: float, ok: bool | None) -> None:
        cur = self.current
        if cur is None or cur.ended is not None:
            return
        self.stages[-1] = replace(cur, ended=now, ok=ok)
