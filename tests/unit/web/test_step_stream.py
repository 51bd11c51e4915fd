"""`step_stream`: a test's steps as NDJSON lines, one per step as it happens, then the outcome."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
from fastapi import FastAPI, Request, Response

from mailgate.errors import BadInput
from mailgate.steps import StepListener, StepReport
from mailgate.web.steps import NDJSON, Run, step_stream, wants_step_stream


async def three_steps(on_step: StepListener) -> StepReport:
    report = StepReport(on_step=on_step)
    report.record("resolve", True, "127.0.0.1")
    await asyncio.sleep(0)
    report.record("connect", True, "connected to 127.0.0.1:993")
    await asyncio.sleep(0)
    return report.fail(
        "tls", "certificate verify failed <b>", "mailgate does not trust the server's certificate."
    )


def app_for(run: Run) -> FastAPI:
    """A page's route as the admin pages write it: live steps for the script, a page otherwise."""
    app = FastAPI()

    @app.post("/mailboxes/support/test")
    async def test_connection(request: Request) -> Response:
        if wants_step_stream(request):
            return step_stream(run)
        report = await run(lambda step: None)
        return Response(f"{len(report.steps)} steps", media_type="text/html")

    return app


async def post(app: FastAPI, accept: str = NDJSON) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="https://mailgate.test") as http:
        return await http.post(
            "/mailboxes/support/test", data={"csrf": "x"}, headers={"Accept": accept}
        )


def lines(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


async def test_one_line_per_step_in_order_then_the_done_line() -> None:
    response = await post(app_for(three_steps))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(NDJSON)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert lines(response) == [
        {"step": "resolve", "ok": True, "detail": "127.0.0.1"},
        {"step": "connect", "ok": True, "detail": "connected to 127.0.0.1:993"},
        {"step": "tls", "ok": False, "detail": "certificate verify failed <b>"},
        {
            "done": True,
            "ok": False,
            "diagnosis": "mailgate does not trust the server's certificate.",
        },
    ]


async def test_a_plain_form_post_gets_the_page() -> None:
    response = await post(app_for(three_steps), accept="text/html")
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "3 steps"


async def test_a_test_that_cannot_start_ends_with_its_sentence() -> None:
    async def unknown(on_step: StepListener) -> StepReport:
        raise BadInput("There is no mailbox named 'support'.")

    response = await post(app_for(unknown))
    assert lines(response) == [
        {"done": True, "ok": False, "diagnosis": "There is no mailbox named 'support'."}
    ]


async def test_each_line_is_sent_before_the_next_step_runs() -> None:
    """At the ASGI level (the test client above gathers the whole body): the test's next step
    waits until the previous line has gone out, so a stream that held the lines back would
    never finish (and fails at the guard below)."""
    sent = asyncio.Event()
    chunks: list[bytes] = []

    async def waits_for_each_line(on_step: StepListener) -> StepReport:
        report = StepReport(on_step=on_step)
        for name in ("resolve", "connect", "count"):
            sent.clear()
            report.record(name, True, "ok")
            async with asyncio.timeout(10):  # a guard against a hang, not a measure
                await sent.wait()
        return report

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the browser stays
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            sent.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "method": "POST"}
    await step_stream(waits_for_each_line)(scope, receive, send)
    assert [json.loads(chunk) for chunk in chunks] == [
        {"step": "resolve", "ok": True, "detail": "ok"},
        {"step": "connect", "ok": True, "detail": "ok"},
        {"step": "count", "ok": True, "detail": "ok"},
        {"done": True, "ok": True, "diagnosis": None},
    ]
