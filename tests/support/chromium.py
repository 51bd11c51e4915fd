"""mailgate's pages in a real browser: Debian's Chromium driven by Playwright's async API.

Playwright never downloads a browser here (never run `playwright install`): it launches
`/usr/bin/chromium`, which tests/support/install-system-deps.sh installs as root on Debian. When it
is missing, the project's skip rule applies (tests/support/servers.py): the tests fail in CI or as
root, and skip only on a developer machine without root.

Every page opened by :func:`open_page` is watched, and what it saw lands in its :class:`PageLog`:

- every JavaScript dialog (`alert`, `confirm`, `prompt`), recorded and dismissed: no page of
  mailgate opens one, so a dialog means a script ran — the proof an XSS test looks for;
- console errors, Content-Security-Policy violations (Chromium reports them on the console) and
  uncaught exceptions;
- every request to an origin other than the server under test (and those the test allowed),
  recorded and blocked: the pages must fetch nothing from outside (no CDN, no web font).

Screenshots for the docs: :func:`keep_screenshot` writes `docs/screenshots/<name>.png` at a
fixed 1280×800 viewport, but only when the environment says `MAILGATE_SCREENSHOTS=1`, so an
ordinary run never rewrites the committed images. To refresh them:

    MAILGATE_SCREENSHOTS=1 .venv/bin/pytest -q tests/browser

Why a browser per test rather than per session: the Playwright objects belong to the event loop
that created them, and every async test and fixture of this suite runs in its own loop
(`asyncio_default_fixture_loop_scope = "function"`); a session-wide browser would force the
tests, and every fixture they use (`ctx` and the database with it), into one shared loop.
Launching costs about 0.8 s per test on an idle two-core machine (the Playwright driver 0.45 s,
Chromium 0.2 s, closing 0.13 s) and 1.1 to 1.4 s on a busy one; a new context and page cost
0.25 s either way. Keeping one Chromium for the session and connecting to it over CDP saves only
the launch (0.2 to 0.3 s): every loop still needs its own Playwright driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Page,
    Route,
    async_playwright,
)

from tests.support.servers import unavailable

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Chromium reports a CSP violation as a console error saying what it blocked and why:
# "Executing inline script violates the following Content Security Policy directive ...";
# before Chromium 140 or so, "Refused to execute inline script because it violates ...".
_CSP_VIOLATION = re.compile(r"violates the following Content Security Policy directive")


def origin_of(url: str) -> str:
    """`scheme://host:port` of `url`, the unit the browser's same-origin rule compares."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass
class FiredDialog:
    """A JavaScript dialog that fired: its kind (`alert`, `confirm`, ...) and message."""

    kind: str
    message: str
    url: str


@dataclass
class PageLog:
    """What a watched page did that a test may want to assert never happens."""

    allowed_origins: set[str] = field(default_factory=set)
    dialogs: list[FiredDialog] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def allow(self, url: str) -> None:
        """Let the page fetch from `url`'s origin too (an identity provider on another port)."""
        self.allowed_origins.add(origin_of(url))

    def allows(self, url: str) -> bool:
        return origin_of(url) in self.allowed_origins

    def problems(self) -> list[str]:
        """Every recorded event, one line each; empty when the page behaved."""
        return (
            [f"dialog {d.kind}({d.message!r}) on {d.url}" for d in self.dialogs]
            + [f"outside request blocked: {url}" for url in self.outside_requests]
            + [f"CSP violation: {text}" for text in self.csp_violations]
            + [f"uncaught exception: {text}" for text in self.page_errors]
            + [f"console error: {text}" for text in self.console_errors]
        )

    def assert_clean(self) -> None:
        """Fail, listing them, if the page opened a dialog, reached outside, broke its CSP,
        threw or logged a console error."""
        problems = self.problems()
        assert not problems, "the page misbehaved:\n  " + "\n  ".join(problems)

    # --- the handlers a watched page calls

    async def _on_dialog(self, dialog: Dialog) -> None:
        where = dialog.page.url if dialog.page is not None else ""
        self.dialogs.append(FiredDialog(dialog.type, dialog.message, where))
        await dialog.dismiss()

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if _CSP_VIOLATION.search(text):
            self.csp_violations.append(text)
        elif not _is_document_status(message):
            self.console_errors.append(text)

    def _on_page_error(self, error: Error) -> None:
        self.page_errors.append(f"{error.name}: {error.message}")

    async def _on_request(self, route: Route) -> None:
        url = route.request.url
        if self.allows(url):
            await route.continue_()
            return
        self.outside_requests.append(url)
        await route.abort("blockedbyclient")


def _is_document_status(message: ConsoleMessage) -> bool:
    """Whether `message` is Chromium's note that the page itself came with an error status (an
    error page answering 400): the test asserts that status; a subresource's is a fault."""
    page = message.page
    return (
        message.text.startswith("Failed to load resource: the server responded with a status")
        and page is not None
        and message.location.get("url") == page.url
    )


def launch_options() -> dict[str, object]:
    """How Playwright launches Debian's Chromium: headless; as root, without the sandbox,
    which Chromium refuses to run as root."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return {"executable_path": str(CHROMIUM), "headless": True, "args": args}


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium under Playwright, closed on exit; or the skip rule applied."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(
            "Chromium",
            f"{CHROMIUM} is missing; tests/support/install-system-deps.sh installs the Debian "
            "package chromium",
        )
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(**launch_options())  # type: ignore[arg-type]
        except Error as exc:
            unavailable("Chromium", f"{CHROMIUM} did not start: {exc.message.splitlines()[0]}")
        try:
            yield browser
        finally:
            await browser.close()


async def watch(context: BrowserContext, log: PageLog) -> Page:
    """A new page of `context` whose dialogs, console errors and outside requests go to `log`."""
    await context.route("**/*", log._on_request)
    page = await context.new_page()
    page.on("dialog", log._on_dialog)
    page.on("console", log._on_console)
    page.on("pageerror", log._on_page_error)
    return page


@asynccontextmanager
async def open_page(
    browser: Browser, server_url: str | None, **context_options: object
) -> AsyncIterator[tuple[Page, PageLog]]:
    """A watched page in a fresh context (no cookies shared with any other test) that may fetch
    only from `server_url`'s origin; relative URLs in `page.goto` resolve against `server_url`.

    The context accepts the test server's certificate (the suite's MailgateServer signs it with
    a throwaway trustme CA): acceptable for loopback only. `context_options` go to
    `browser.new_context` (a `timezone_id` or a `locale`, for example)."""
    log = PageLog()
    options: dict[str, object] = {
        "ignore_https_errors": True,
        "viewport": VIEWPORT,
        "locale": "en-US",
        "timezone_id": "UTC",
    }
    if server_url is not None:
        log.allow(server_url)
        options["base_url"] = server_url
    context = await browser.new_context(**(options | context_options))  # type: ignore[arg-type]
    try:
        yield await watch(context, log), log
    finally:
        await context.close()


async def keep_screenshot(page: Page, name: str, folder: Path = SCREENSHOTS) -> Path | None:
    """Save the page as `<folder>/<name>.png` (`docs/screenshots/` unless told) at 1280×800 when
    `MAILGATE_SCREENSHOTS=1` is set, and return its path; otherwise do nothing and return None,
    so ordinary runs leave the committed images alone."""
    if os.environ.get("MAILGATE_SCREENSHOTS") != "1":
        return None
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"screenshot name {name!r}: use lowercase letters, digits and dashes")
    folder.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    path = folder / f"{name}.png"
    await page.screenshot(path=path, full_page=False, animations="disabled", caret="hide")
    return path
