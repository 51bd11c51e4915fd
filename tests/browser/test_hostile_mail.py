"""A sender chooses a message's subject, name and body: whatever they write shows as text on the
pages that list mail (the issues, the dashboard's last message) and never runs in the browser."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path

from playwright.async_api import Page, expect

from mailgate.context import Context
from mailgate.inbound.ingest import ingest
from mailgate.inbound.quarantine import list_quarantine
from mailgate.tracker.service import add_project
from tests.browser.test_admin_pages import sign_in
from tests.support.chromium import PageLog

SUBJECT = "<script>alert('subject')</script> printer"
NAME = "\"><img src=x onerror=alert('name')>"


async def test_a_hostile_subject_and_sender_name_stay_text(
    ctx: Context, page: Page, page_log: PageLog, tmp_path: Path
) -> None:
    await add_project(ctx, "HELP", "Help desk")
    mail = EmailMessage()
    mail["From"] = formataddr((NAME, "mallory@example.net"))  # quoted: a valid address
    mail["To"] = "support@example.test"
    mail["Subject"] = SUBJECT
    mail["Message-ID"] = "<hostile@example.net>"
    mail.set_content("<script>alert('body')</script>", subtype="html")
    eml = tmp_path / "hostile.eml"
    eml.write_bytes(bytes(mail))
    counts = await ingest(ctx, [eml], "HELP")
    assert counts["created"] == 1, [q.get("reason") or q for q in await list_quarantine(ctx)]

    await sign_in(ctx, page)
    await page.goto("/issues")
    await expect(page.locator("tbody")).to_contain_text(SUBJECT)
    await expect(page.locator("tbody")).to_contain_text("mallory@example.net")
    await page.goto("/")  # the dashboard's totals
    await expect(page.locator("main")).to_contain_text("Open issues")
    assert page_log.dialogs == []
    page_log.assert_clean()
