"""`static/steps.js` in Chromium: a `<form data-steps>` shows each step of a test as the server
streams it, under a CSP that forbids inline script; without JavaScript the form posts as usual.

The page and its route are a tiny app of their own (the admin pages wire the real tests): the
route's test records "resolve", then waits until this test lets it go on, so the first step must
be on the screen while the test is still running.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from playwright.async_api import Browser, expect

import mailgate.web
from mailgate.steps import StepListener, StepReport
from mailgate.web.steps import step_stream, wants_step_stream
from tests.support.chromium import open_page

SCRIPT = Path(mailgate.web.__file__).parent / "static" / "steps.js"
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"
HOSTILE = "<img src=x onerror=alert(1)>"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mailbox support</title>
<script src="/static/steps.js" defer></script></head>
<body><main>
<form method="post" action="/mailboxes/support/test" data-steps>
<input type="hidden" name="csrf" value="the-csrf-token">
<button type="submit">Test connection</button>
</form>
</main></body></html>"""


@dataclass
class Stand:
    """The tiny app's state: what the route received, and the gate its test waits at."""

    url: str = ""
    go_on: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: bool = False
    posts: list[tuple[str, str]] = field(default_factory=list)  # (accept, csrf)


def app_for(stand: Stand) -> FastAPI:
    app = FastAPI()

    async def gated_test(on_step: StepListener) -> StepReport:
        report = StepReport(on_step=on_step)
        report.record("resolve", True, "127.0.0.1")
        stand.waiting = True
        await stand.go_on.wait()
        stand.waiting = False
        return report.fail("connect", f"refused {HOSTILE}", f"Is the server running? {HOSTILE}")

    @app.get("/")
    async def page() -> Response:
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": CSP})

    @app.get("/static/steps.js")
    async def script() -> Response:
        return FileResponse(SCRIPT, media_type="text/javascript")

    @app.post("/mailboxes/support/test")
    async def test_connection(request: Request) -> Response:
        form = await request.form()
        stand.posts.append((request.headers.get("accept", ""), str(form.get("csrf"))))
        if wants_step_stream(request):
            return step_stream(gated_test)
        return HTMLResponse(
            "<!doctype html><title>Steps</title><p>The finished list</p>",
            headers={"Content-Security-Policy": CSP},
        )

    return app


@pytest.fixture
async def stand() -> AsyncIterator[Stand]:
    stand = Stand()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    stand.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app_for(stand), log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield stand
    stand.go_on.set()
    server.should_exit = True
    await serving


async def test_steps_appear_one_by_one_then_the_diagnosis(chromium: Browser, stand: Stand) -> None:
    async with open_page(chromium, stand.url) as (page, log):
        await page.goto("/")
        await page.get_by_role("button", name="Test connection").click()

        steps = page.locator("ol.steps li")
        await expect(steps).to_have_count(1)
        await expect(steps.nth(0)).to_have_class("ok")
        await expect(steps.nth(0)).to_contain_text("ok")
        await expect(steps.nth(0)).to_contain_text("resolve")
        assert stand.waiting, "the first step is shown while the test still runs"
        await expect(page.locator("ol.steps")).to_have_attribute("aria-live", "polite")
        await expect(page.get_by_role("button", name="Test connection")).to_be_disabled()

        stand.go_on.set()
        diagnosis = page.locator("p.diagnosis")
        await expect(diagnosis).to_have_text(f"Is the server running? {HOSTILE}")
        await expect(steps).to_have_count(2)
        await expect(steps.nth(1)).to_have_class("failed")
        await expect(steps.nth(1).locator(".outcome")).to_have_text("failed")
        await expect(steps.nth(1).locator(".detail")).to_have_text(f"refused {HOSTILE}")
        await expect(page.locator("p.steps-summary")).to_contain_text("connect")
        await expect(page.get_by_role("button", name="Test connection")).to_be_enabled()
        assert page.url == f"{stand.url}/", "the page stayed: the script posted the form"
        log.assert_clean()  # no dialog fired, no CSP violation, no error
    assert stand.posts == [("application/x-ndjson", "the-csrf-token")]


async def test_without_javascript_the_form_posts_as_usual(chromium: Browser, stand: Stand) -> None:
    async with open_page(chromium, stand.url, java_script_enabled=False) as (page, log):
        await page.goto("/")
        await page.get_by_role("button", name="Test connection").click()
        await expect(page.get_by_text("The finished list")).to_be_visible()
        log.assert_clean()
    accept, csrf = stand.posts[0]
    assert "x-ndjson" not in accept and csrf == "the-csrf-token"
