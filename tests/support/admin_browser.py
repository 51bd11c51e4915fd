"""An admin signed in through mailgate's sign-in form in Chromium, for the browser tests."""

from __future__ import annotations

from playwright.async_api import Page, expect

from mailgate.context import Context
from mailgate.tracker.users import add_user
from tests.support.web import PASSWORD


async def sign_in_as_admin(ctx: Context, page: Page, email: str = "admin@example.com") -> None:
    """Add an admin `email` and sign in as them on `page`: it lands on the dashboard."""
    await add_user(ctx, email, "admin", PASSWORD)
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")


async def click_test_connection(page: Page) -> None:
    """Click "Test connection" once static/steps.js has taken its form over (the live path).
    The script is deferred: on a busy machine a click can come first, and the form then posts
    as it does without JavaScript."""
    await expect(page.locator("form[data-steps-live]").first).to_be_attached()
    await page.get_by_role("button", name="Test connection").click()
