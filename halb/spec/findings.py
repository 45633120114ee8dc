"""What the offline checks find, and the error that carries the findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from halb.errors import SpecError

# a note explains a choice halb made (exit 0); a warning is a risk the user should weigh
Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Finding:
    level: Severity
    where: str  # "halb.yaml: vips.internal.router_id" or "hosts.ini: host lb1"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "where": self.where, "message": self.message}


class SpecInvalid(SpecError):
    """Raised with every error finding; the message lists them, one per line."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("\n".join(str(f) for f in self.findings if f.level == "error"))
