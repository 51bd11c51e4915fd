"""A test-connection run consumed as a page consumes it (`mailgate.steps.live`), noting for each
step whether the run had already ended when the step arrived."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailgate.steps import StepListener, StepReport, live


async def heard_live(
    run: Callable[[StepListener], Awaitable[StepReport]],
) -> tuple[list[tuple[str, bool]], StepReport]:
    """Each step's name with whether the run had finished when it arrived, and the report."""
    finished = False

    async def watched(on_step: StepListener) -> StepReport:
        nonlocal finished
        report = await run(on_step)
        finished = True
        return report

    arrived: list[tuple[str, bool]] = []
    report: StepReport | None = None
    async for item in live(watched):
        if isinstance(item, StepReport):
            report = item
        else:
            arrived.append((item.step, finished))
    assert report is not None, "live ends with the report"
    return arrived, report
