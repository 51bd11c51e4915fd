"""Test connection, live: a test's steps streamed to the browser as it takes them.

A page's "Test connection" form carries `data-steps`; `static/steps.js` posts it with
`Accept: application/x-ndjson` and the route answers `step_stream(run)`: one JSON line per step,
`{"step": …, "ok": …, "detail": …}`, as soon as the test records it, then
`{"done": true, "ok": …, "diagnosis": …}`. Without JavaScript the same route renders the finished
report. A route serves both:

    if wants_step_stream(request):
        return step_stream(lambda on_step: probe(ctx, name, on_step=on_step))
    report = await probe(ctx, name)  # a MailgateError: the form again, the sentence inline, 400

A test that cannot start (no such mailbox, a bad address) ends the stream with its sentence as
the diagnosis: the status line went out before the test began.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from mailgate.errors import MailgateError
from mailgate.steps import StepListener, StepReport, live

NDJSON = "application/x-ndjson"

Run = Callable[[StepListener], Awaitable[StepReport]]


def wants_step_stream(request: Request) -> bool:
    """Whether the page's script asked for the steps live (a plain form post wants a page)."""
    return NDJSON in request.headers.get("accept", "")


def step_stream(run: Run) -> StreamingResponse:
    """Run the test, streaming each step as it happens and then the outcome, as NDJSON.

    If the browser goes away, the test is cancelled and its connection closed."""
    return StreamingResponse(
        _lines(run),
        media_type=NDJSON,
        headers={
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold the lines until the end
        },
    )


async def _lines(run: Run) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(live(run)) as heard:
        try:
            async for item in heard:
                if isinstance(item, StepReport):
                    yield _line({"done": True, "ok": item.ok, "diagnosis": item.diagnosis})
                else:
                    yield _line({"step": item.step, "ok": item.ok, "detail": item.detail})
        except MailgateError as exc:
            yield _line({"done": True, "ok": False, "diagnosis": str(exc)})


def _line(value: dict[str, object]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"
