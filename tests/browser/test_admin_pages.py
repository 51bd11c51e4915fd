"""The admin's pages in Chromium: sign in, add a project and a user by the forms' labels, see
them in their lists and in the audit log, watch the dashboard count a new issue without a
reload, and find a script typed into a project's name or a user's email inert."""

from __future__ import annotations

from playwright.async_api import Page, expect
from sqlalchemy import update

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.store.models import OutboxMessage
from mailgate.tracker.users import add_user
from tests.integration.test_pipeline import mail, take
from tests.support.chromium import PageLog, keep_screenshot
from tests.support.web import PASSWORD

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'


async def sign_in(ctx: Context, page: Page) -> None:
    """As a new admin, through the sign-in form."""
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    await page.goto("/login")
    await page.get_by_label("Email").fill("admin@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")


async def add_project_by_form(page: Page, key: str, name: str) -> None:
    await page.goto("/projects")
    await page.get_by_role("link", name="Add project").click()
    await page.get_by_label("Key").fill(key)
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_role("button", name="Add project").click()
    await expect(page.locator(".flash")).to_have_text(f"Project {key} added.")


async def add_user_by_form(page: Page, email: str, role: str) -> None:
    await page.goto("/users")
    await page.get_by_role("link", name="Add user").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Role").select_option(role)
    await page.get_by_role("button", name="Add user").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("added")


async def servers(ctx: Context) -> None:
    """A mailbox that feeds HELP (no process reads it here) and an SMTP server that answers."""
    await add_mailbox(
        ctx,
        "support",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            username="support@example.com",
            password="never shown",
            project="HELP",
        ),
    )
    options = SmtpOptions(
        host="127.0.0.1", security="none", username="support@example.com", password="never"
    )
    await add_smtp(ctx, "out", options)


async def test_an_admin_adds_a_project_and_a_user_and_finds_them_everywhere(
    ctx: Context, page: Page, page_log: PageLog
) -> None:
    await sign_in(ctx, page)
    await add_project_by_form(page, "HELP", "Help desk")
    await servers(ctx)  # HELP's
    await page.goto("/projects")
    row = page.locator('tr[data-project="HELP"]')
    await expect(row).to_contain_text("Help desk")
    await expect(row.get_by_role("link", name="support")).to_have_attribute(
        "href", "/mailboxes/support"
    )
    await expect(row.get_by_role("link", name="out")).to_have_attribute("href", "/smtp/out")
    await keep_screenshot(page, "projects")

    await add_user_by_form(page, "agent@example.com", "agent")
    link = page.get_by_label("One-time link")
    assert "/welcome/" in await link.input_value()
    await expect(page.get_by_role("button", name="Copy")).to_be_visible()  # the script ran
    await keep_screenshot(page, "users-link")
    await page.goto("/users")
    user_row = page.locator('tr[data-user="agent@example.com"]')
    await expect(user_row).to_contain_text("agent")
    await expect(user_row).to_contain_text("link pending")
    await keep_screenshot(page, "users")

    await page.goto("/audit")
    await expect(page.locator('tr[data-action="project.add"]')).to_contain_text("HELP")
    await expect(page.locator('tr[data-action="user.add"]').first).to_contain_text(
        "agent@example.com"
    )
    await page.get_by_label("Action starts with").fill("user.")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator('tr[data-action="project.add"]')).to_have_count(0)
    await keep_screenshot(page, "audit")
    page_log.assert_clean()


async def test_the_dashboard_counts_a_new_issue_without_a_reload(
    ctx: Context, page: Page, page_log: PageLog
) -> None:
    await sign_in(ctx, page)
    await add_project_by_form(page, "HELP", "Help desk")
    await servers(ctx)  # HELP's
    await page.goto("/")
    await expect(page.locator("[data-attention-none]")).to_be_visible()
    await expect(page.locator('[data-total="open_issues"]')).to_have_text("0")
    await take(ctx, mail())  # an issue, and its acknowledgement in the outbox
    async with ctx.db.session() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status="dead"))
    await expect(page.locator('[data-total="open_issues"]')).to_have_text("1", timeout=15_000)
    item = page.locator('[data-attention="outbox"]')
    await expect(item.get_by_role("link", name="Retry the dead messages")).to_have_attribute(
        "href", "/outbox"
    )
    mailbox = page.locator('tr[data-mailbox="support"]')
    await expect(mailbox.locator(".status")).to_have_text("not running")
    await keep_screenshot(page, "dashboard")
    page_log.assert_clean()


async def test_a_script_in_a_project_name_or_a_user_email_stays_text(
    ctx: Context, page: Page, page_log: PageLog
) -> None:
    await sign_in(ctx, page)
    await add_project_by_form(page, "EVIL", f"{SCRIPT} {IMAGE}")
    await add_user_by_form(page, f"{SCRIPT}@example.com", "agent")
    await add_user_by_form(page, '"><img/src=x/onerror=alert(1)>@example.com', "agent")
    for path in ("/projects", "/projects/EVIL", "/users", "/audit", "/"):
        await page.goto(path)
        await page.wait_for_load_state("load")
    await page.goto("/projects")
    await expect(page.locator('tr[data-project="EVIL"]')).to_contain_text(SCRIPT)
    await page.goto("/users")
    await expect(page.locator("main")).to_contain_text(f"{SCRIPT}@example.com".lower())
    assert page_log.dialogs == []
    page_log.assert_clean()
