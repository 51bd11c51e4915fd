"""Fixtures of the browser tests: Debian's Chromium (tests/support/chromium.py) and a watched page
on the suite's HTTPS server; a failing test leaves a full-page screenshot in
`test-artifacts/browser/<test name>.png`.

`page` opens on `mailgate_server` (tests/support/server.py); a module that needs the server
started differently (`demo=True`) overrides the `mailgate_server` fixture.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Error, Page

from tests.support.chromium import PageLog, launch_chromium, open_page
from tests.support.server import MailgateServer

# The report of each phase of the test (setup, call, teardown), for the fixtures' teardown.
PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def failed(node: pytest.Item) -> bool:
    reports = node.stash.get(PHASE_REPORTS, {})
    return any(report.failed for report in reports.values())


def artifact_path(config: pytest.Config, node: pytest.Item) -> Path:
    """`test-artifacts/browser/<test name>.png` under the repository (the name made safe for a
    file: a parametrized test's brackets and slashes become dashes)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", node.name).strip("-")
    return config.rootpath / "test-artifacts" / "browser" / f"{name}.png"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, launched for this test (why not once per session:
    tests/support/chromium.py)."""
    async with launch_chromium() as browser:
        yield browser


@pytest.fixture
async def watched_page(
    chromium: Browser, mailgate_server: MailgateServer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Page, PageLog]]:
    """A page in its own context, allowed to fetch only from `mailgate_server`; its screenshot
    is kept when the test fails."""
    async with open_page(chromium, mailgate_server.url) as (page, log):
        yield page, log
        if failed(request.node):
            path = artifact_path(request.config, request.node)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                await page.screenshot(path=path, full_page=True)
            except Error as exc:  # a crashed page: the test's own failure says more
                print(f"no screenshot of the failed test: {exc.message}")
            else:
                print(f"screenshot of the failed test: {path}")


@pytest.fixture
def page(watched_page: tuple[Page, PageLog]) -> Page:
    """A Playwright page on the test's server: `await page.goto("/healthz")`."""
    return watched_page[0]


@pytest.fixture
def page_log(watched_page: tuple[Page, PageLog]) -> PageLog:
    """What `page` did: its dialogs, console errors, CSP violations and blocked outside
    requests (`page_log.assert_clean()`)."""
    return watched_page[1]
