"""A test run as numbered steps (`integration test`, `mailbox test`, `smtp test`): each ok or
failed with its detail, and one diagnosis when a step failed. The steps after a failed one are
not run.

Whoever runs a test can hear each step the moment it is recorded: the run records through
`StepReport.record`, which calls the report's `on_step` listener. `live` turns such a run into an
async iterator of its steps, then its finished report — what a page streams to the browser so the
admin sees the steps go green one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    step: str
    ok: bool
    detail: str


StepListener = Callable[[Step], None]
"""Hears each step as it is recorded. It runs inside the test, between two of its steps: it must
return at once (put the step on a queue, append it to a list), never block or raise."""


@dataclass
class StepReport:
    steps: list[Step] = field(default_factory=list)
    diagnosis: str | None = None
    on_step: StepListener | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def record(self, step: str, ok: bool, detail: str) -> Step:
        """Add a step at the end, and tell the listener. Every step of a run goes through here."""
        recorded = Step(step, ok, detail)
        self.steps.append(recorded)
        if self.on_step is not None:
            self.on_step(recorded)
        return recorded

    def fail(self, step: str, detail: str, diagnosis: str) -> StepReport:
        """Record the step that failed and what it means for the admin; the run stops here."""
        self.diagnosis = diagnosis
        self.record(step, False, detail)
        return self

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps": [{"step": s.step, "ok": s.ok, "detail": s.detail} for s in self.steps],
            "diagnosis": self.diagnosis,
        }


async def live(
    run: Callable[[StepListener], Awaitable[StepReport]],
) -> AsyncGenerator[Step | StepReport, None]:
    """Run a test in its own task and yield each of its steps as it happens, then its report.

    `run` starts the test with the listener it is given (for example
    `lambda listener: probe(ctx, name, on_step=listener)`). An exception of the run (a mailbox
    that does not exist) is raised here after the steps heard before it. When the consumer stops
    early (the browser went away, the generator is closed), the test's task is cancelled and
    awaited, so its connection is closed before this generator finishes.
    """
    heard: asyncio.Queue[Step | None] = asyncio.Queue()

    async def drive() -> StepReport:
        try:
            return await run(heard.put_nowait)
        finally:
            heard.put_nowait(None)  # the run ended, one way or another: stop waiting for steps

    task = asyncio.create_task(drive())
    try:
        while (step := await heard.get()) is not None:
            yield step
        yield await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
