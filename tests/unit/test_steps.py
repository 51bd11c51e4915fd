"""A test's steps heard as they are recorded, and `live`: the steps of a running test, one by one,
then its report; a consumer that leaves stops the test."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mailgate.errors import BadInput
from mailgate.steps import Step, StepListener, StepReport, live


def test_the_listener_hears_each_step_once_in_order_as_it_is_recorded() -> None:
    heard: list[tuple[str, int]] = []
    report = StepReport()
    report.on_step = lambda step: heard.append((step.step, len(report.steps)))
    report.record("resolve", True, "127.0.0.1")
    report.record("connect", True, "in 3 ms")
    report.fail("tls", "certificate verify failed", "Trust the server's CA with --ca-file.")
    assert heard == [("resolve", 1), ("connect", 2), ("tls", 3)]
    assert not report.ok


def test_the_json_is_unchanged_by_a_listener() -> None:
    report = StepReport(on_step=lambda step: None)
    report.record("resolve", True, "127.0.0.1")
    report.fail("connect", "refused", "Is the server running?")
    assert report.as_json() == {
        "ok": False,
        "steps": [
            {"step": "resolve", "ok": True, "detail": "127.0.0.1"},
            {"step": "connect", "ok": False, "detail": "refused"},
        ],
        "diagnosis": "Is the server running?",
    }
    assert report == StepReport(report.steps, report.diagnosis)  # the listener is not data


class Gated:
    """A test whose steps wait for the consumer's go-ahead: proof that a step reaches the
    consumer while the test is still running."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.go = asyncio.Event()
        self.finished = False
        self.closed = False

    async def __call__(self, on_step: StepListener) -> StepReport:
        report = StepReport(on_step=on_step)
        try:
            for name in self.names:
                self.go.clear()
                report.record(name, True, f"{name} done")
                await self.go.wait()
            self.finished = True
            return report
        finally:
            self.closed = True  # where a real test closes its connection


async def test_live_yields_each_step_while_the_test_runs_then_the_report() -> None:
    test = Gated(["resolve", "connect", "count"])
    seen: list[str] = []
    async with contextlib.aclosing(live(test)) as heard:
        async for item in heard:
            if isinstance(item, Step):
                assert not test.finished, f"{item.step} arrived after the test ended"
                seen.append(item.step)
                test.go.set()
            else:
                report = item
    assert seen == ["resolve", "connect", "count"]
    assert report.ok and [s.step for s in report.steps] == seen
    assert test.finished


async def test_a_test_that_cannot_start_raises_through_live() -> None:
    async def unknown(on_step: StepListener) -> StepReport:
        raise BadInput("There is no mailbox named 'nope'.")

    with pytest.raises(BadInput, match="no mailbox named"):
        async for _ in live(unknown):
            pass


async def test_steps_heard_before_an_error_arrive_before_it() -> None:
    async def breaks(on_step: StepListener) -> StepReport:
        report = StepReport(on_step=on_step)
        report.record("resolve", True, "127.0.0.1")
        await asyncio.sleep(0)
        raise BadInput("The mailbox was deleted.")

    seen: list[str] = []
    with pytest.raises(BadInput):
        async for item in live(breaks):
            assert isinstance(item, Step)
            seen.append(item.step)
    assert seen == ["resolve"]


async def test_closing_the_stream_cancels_the_test_and_closes_its_connection() -> None:
    test = Gated(["resolve", "connect", "count"])
    heard = live(test)
    first = await anext(heard)
    assert isinstance(first, Step) and first.step == "resolve"
    await heard.aclose()
    assert test.closed and not test.finished


async def test_a_consumer_cancelled_while_waiting_cancels_the_test() -> None:
    test = Gated(["resolve", "connect"])
    first_heard = asyncio.Event()

    async def consume() -> None:
        async for _ in live(test):
            first_heard.set()

    consumer = asyncio.create_task(consume())
    await first_heard.wait()
    consumer.cancel()  # the browser went away while the test waits for its next step
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert test.closed and not test.finished
