"""The browser harness itself: Debian's Chromium opens mailgate's pages over the suite's HTTPS
server, and what the XSS and no-outside-fetch checks of the page tests rely on — the records of
dialogs, CSP violations and outside requests — does record."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.support.chromium import PageLog, keep_screenshot, open_page
from tests.support.server import MailgateServer


async def test_health_page_opens_over_https(page: Page, page_log: PageLog) -> None:
    response = await page.goto("/healthz")
    assert response is not None and response.status == 200
    assert '"status":"ok"' in await page.inner_text("body")
    page_log.assert_clean()


async def test_an_unknown_sign_in_link_shows_why(page: Page, page_log: PageLog) -> None:
    response = await page.goto("/oauth2/start?request=bogus")
    assert response is not None and response.status == 400
    assert await page.inner_text("h1") == "Unknown sign-in link"
    assert "This link was not made by this mailgate." in await page.inner_text("main")
    assert page_log.dialogs == []
    assert page_log.outside_requests == []
    assert page_log.csp_violations == []
    assert page_log.page_errors == []


async def test_the_sign_in_pages_csp_is_valid(page: Page, page_log: PageLog) -> None:
    await page.goto("/oauth2/start?request=bogus")
    assert page_log.console_errors == []


async def test_a_script_that_runs_is_recorded_as_a_dialog(chromium: Browser) -> None:
    async with open_page(chromium, None) as (page, log):
        await page.set_content("<p>hello</p><script>alert('injected')</script>")
        assert await page.inner_text("p") == "hello"  # the page went on: the dialog was dismissed
    assert [(dialog.kind, dialog.message) for dialog in log.dialogs] == [("alert", "injected")]
    with pytest.raises(AssertionError, match=r"dialog alert\('injected'\)"):
        log.assert_clean()


async def test_a_script_the_csp_refuses_is_recorded_and_never_runs(chromium: Browser) -> None:
    async with open_page(chromium, None) as (page, log):
        await page.set_content(
            "<meta http-equiv='Content-Security-Policy' content=\"script-src 'none'\">"
            "<script>alert('injected')</script>"
        )
    assert log.dialogs == []
    assert len(log.csp_violations) == 1
    assert "inline script" in log.csp_violations[0]


async def test_a_fetch_from_outside_is_blocked_and_recorded(
    chromium: Browser, mailgate_server: MailgateServer
) -> None:
    # A page without mailgate's CSP, which would stop these before they reach the network.
    fetch = "url => fetch(url, {mode: 'no-cors'}).then(() => 'fetched', () => 'blocked')"
    async with open_page(chromium, mailgate_server.url) as (page, log):
        await page.set_content(
            "<link rel='stylesheet' href='https://cdn.example.net/style.css'>"
            "<img src='https://fonts.example.org/logo.png'>"
        )
        inside = await page.evaluate(fetch, f"{mailgate_server.url}/healthz")
        outside = await page.evaluate(fetch, "https://api.example.com/collect")
    assert (inside, outside) == ("fetched", "blocked")
    assert sorted(log.outside_requests) == [
        "https://api.example.com/collect",
        "https://cdn.example.net/style.css",
        "https://fonts.example.org/logo.png",
    ]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (bytes 16-24)."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


async def test_screenshots_for_the_docs_only_on_request(
    chromium: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(chromium, None, viewport={"width": 600, "height": 400}) as (page, _):
        await page.set_content("<h1>mailgate</h1>")
        monkeypatch.delenv("MAILGATE_SCREENSHOTS", raising=False)
        assert await keep_screenshot(page, "dashboard", tmp_path) is None
        assert list(tmp_path.iterdir()) == []
        monkeypatch.setenv("MAILGATE_SCREENSHOTS", "1")
        kept = await keep_screenshot(page, "dashboard", tmp_path)
    assert kept == tmp_path / "dashboard.png"
    assert png_size(kept) == (1280, 800)
