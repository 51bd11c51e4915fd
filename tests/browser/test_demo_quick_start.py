"""The README's quick start, as a newcomer does it: `mailgate serve --demo`, open the address in a
browser (signed in as the demo admin, with a banner saying so), open the `demo` integration,
Authorize, sign in on the emulator's pages as alice@contoso.example, and land on "Connected as
alice@contoso.example"; Test connection goes green."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from playwright.async_api import Browser, expect

from mailgate_emulator.demo import DEMO_PASSWORD
from tests.e2e.test_demo import wait_until_serving
from tests.support.admin_browser import click_test_connection
from tests.support.chromium import keep_screenshot, open_page
from tests.support.server import free_port

ALICE = "alice@contoso.example"


async def test_the_demo_quick_start_in_a_browser(home: Path, chromium: Browser) -> None:
    port = free_port()
    url = f"https://localhost:{port}"
    env = {**os.environ, "MAILGATE_HOME": str(home), "MAILGATE_BASE_URL": url}
    env.pop("MAILGATE_DATABASE_URL", None)
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailgate",
        "serve",
        "--demo",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_until_serving(url, home / "tls" / "localhost.crt", serve)
        async with open_page(chromium, url) as (page, log):
            await page.goto("/")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
            await expect(page.locator(".banner.demo")).to_contain_text("demo admin")
            await page.get_by_role("link", name="OAuth 2.0 integrations").click()
            await page.get_by_role("link", name="demo", exact=True).click()
            await page.get_by_role("button", name="Authorize", exact=True).click()
            await page.get_by_role("button", name="Continue to Microsoft").click()
            await expect(page.locator(".emulator-banner")).to_contain_text("stand-in")
            await keep_screenshot(page, "demo-sign-in")
            await page.get_by_label("Email, phone, or Skype").fill(ALICE)
            await page.get_by_label("Password").fill(DEMO_PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("button", name="Accept").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(f"Connected as {ALICE}")
            await page.get_by_role("link", name="Back to integration demo").click()
            await expect(page.locator("table")).to_contain_text(f"Connected as {ALICE}")
            await click_test_connection(page)
            await expect(page.locator("p.steps-summary")).to_have_text("All steps passed.")
            log.assert_clean()
    finally:
        serve.terminate()
        await serve.wait()
