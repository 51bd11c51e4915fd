"""A test run as numbered steps (`integration test`, `mailbox test`): each ok or failed with its
detail, and one diagnosis when a step failed. The steps after a failed one are not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    step: str
    ok: bool
    detail: str


@dataclass
class StepReport:
    steps: list[Step] = field(default_factory=list)
    diagnosis: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps": [{"step": s.step, "ok": s.ok, "detail": s.detail} for s in self.steps],
            "diagnosis": self.diagnosis,
        }
