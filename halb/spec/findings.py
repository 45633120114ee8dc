"""What the offline checks find, and the error that carries the findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from halb.errors import SpecError
from halb.kinds import one_line, redact

# Findings `validate` and `--json` list; past this, one more says how many were left out
# (a range and one duplicate address made 300 000 lines).
MAX_FINDINGS = 50

# a note explains a choice halb made (exit 0); a warning is a risk the user should weigh
Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Finding:
    level: Severity
    where: str  # "halb.yaml: vips.internal.router_id" or "hosts.ini: host lb1"
    message: str

    def __post_init__(self) -> None:
        # Every finding is one escaped, clipped line with no secret `key=value` in it,
        # however it was built: what prints it (text or JSON) needs no care of its own.
        for name in ("where", "message"):
            object.__setattr__(self, name, one_line(redact(getattr(self, name)), 500))

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "where": self.where, "message": self.message}


class SpecInvalid(SpecError):
    """Raised with every error finding; the message lists them, one per line."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("\n".join(str(f) for f in self.findings if f.level == "error"))


def capped(findings: Sequence[Finding], limit: int = MAX_FINDINGS) -> list[Finding]:
    """The first `limit` findings of each level, and a count of the rest."""
    out: list[Finding] = []
    levels: tuple[Severity, ...] = ("error", "warning", "note")
    left: dict[str, int] = dict.fromkeys(levels, 0)
    kept: dict[str, int] = dict.fromkeys(levels, 0)
    for f in findings:
        if kept[f.level] < limit:
            kept[f.level] += 1
            out.append(f)
        else:
            left[f.level] += 1
    for level in levels:
        if left[level]:
            out.append(Finding(level, "(more)", f"{left[level]} more {level}s not shown"))
    return out
