"""The agent's journey in Chromium, over HTTPS, against the real servers: a customer's mail
delivered to Dovecot appears in the issue list within seconds → the agent opens it, sees the
conversation and the attachment, comments → the notification reaches the customer's mailbox
through Postfix → the customer's reply, quoted history and all, appears on the same issue page
as a comment holding only the new text. And: search finds an issue by a word of a comment; a
quarantined message is retried from the page and becomes an issue.

The server runs its mail workers, as `mailgate serve` does; the mailbox and the SMTP server are
set up as an admin's CLI would (the admin's pages have their own journey)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.tracker.service import add_project
from mailgate.tracker.users import add_user
from tests.support.chromium import PageLog, keep_screenshot
from tests.support.dovecot import DEFAULT_USERS, Dovecot
from tests.support.postfix import CUSTOMERS, Postfix
from tests.support.server import MailgateServer
from tests.support.web import PASSWORD

AGENT = "agent@example.com"
DESK = "alice@example.test"  # the desk's mailbox, at Dovecot
CUSTOMER = "customer@example.net"  # the customer's own mailbox, reached through Postfix


@pytest.fixture
def mailgate_server(settings: Settings, tmp_path: Path) -> Iterator[MailgateServer]:
    """`mailgate serve`: the web app with its mail workers."""
    with MailgateServer(settings, tmp_path / "tls", run_workers=True) as server:
        yield server


async def open_desk(ctx: Context, dovecot: Dovecot, postfix: Postfix) -> None:
    """HELP reads alice@example.test over IMAP and answers through Postfix, with passwords."""
    await add_project(ctx, "HELP", "Help desk")
    await add_smtp(
        ctx,
        "out",
        SmtpOptions(
            host="127.0.0.1",
            port=postfix.submission_port,
            security="starttls",
            ca_file=str(postfix.ca_file),
            username=DESK,
            password=DEFAULT_USERS[DESK],
            from_address=DESK,
            from_name="Help desk",
        ),
    )
    await add_mailbox(
        ctx,
        "support",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=dovecot.imaps_port,
            security="ssl",
            ca_file=str(dovecot.ca_file),
            username=DESK,
            password=DEFAULT_USERS[DESK],
            project="HELP",
        ),
    )
    await add_user(ctx, AGENT, "agent", PASSWORD)


def customer_mail(subject: str, body: str, **headers: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Carol Customer <{CUSTOMER}>"
    mail["To"] = DESK
    mail["Subject"] = subject
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    mail.add_attachment(
        b"printer model: LaserJet 4\n",
        maintype="text",
        subtype="plain",
        filename="printer-details.txt",
    )
    return bytes(mail)


async def sign_in_as_agent(page: Page) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(AGENT)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Issues")


async def reload_until(page: Page, text: str, *, seconds: float = 30) -> None:
    """Reload until the page holds `text` (the list has no live refresh: a reload is what an
    agent does)."""
    for _ in range(int(seconds * 2)):
        if text in await page.locator("main").inner_text():
            return
        await asyncio.sleep(0.5)
        await page.reload()
    await expect(page.locator("main")).to_contain_text(text)


def mail_to_customer(dovecot: Dovecot, text: str) -> EmailMessage | None:
    for raw in dovecot.messages(CUSTOMER):
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        if body is not None and text in body.get_content():
            return message
    return None


async def test_the_agents_journey(
    ctx: Context,
    page: Page,
    page_log: PageLog,
    dovecot: Dovecot,
    postfix: Postfix,
    mailgate_server: MailgateServer,
) -> None:
    assert CUSTOMER in CUSTOMERS
    await open_desk(ctx, dovecot, postfix)
    await sign_in_as_agent(page)

    # 1. A customer's mail delivered to Dovecot is in the list within seconds.
    dovecot.deliver(
        DESK,
        customer_mail(
            "Printer on fire",
            "The printer on the third floor is on fire again.",
            Message_ID="<desk-1@example.net>",
        ),
    )
    await reload_until(page, "Printer on fire")
    await keep_screenshot(page, "issues")

    # 2. The agent opens it: the conversation and the attachment.
    await page.get_by_role("link", name="Printer on fire").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("HELP-1")
    conversation = page.locator("ol.conversation")
    await expect(conversation).to_contain_text("on fire again")
    attachment = page.get_by_role("link", name="printer-details.txt")
    async with page.expect_download() as download_info:
        await attachment.click()
    download = await download_info.value
    assert download.suggested_filename == "printer-details.txt"
    assert Path(await download.path()).read_bytes() == b"printer model: LaserJet 4\n"

    # 3. The agent comments; the notification reaches the customer through Postfix.
    await page.get_by_label("Comment").fill("We replaced the toner; please try again.")
    await page.get_by_role("button", name="Add comment").click()
    await expect(page.locator(".flash")).to_be_visible()
    await expect(conversation).to_contain_text("We replaced the toner")
    notification = None
    for _ in range(120):
        notification = mail_to_customer(dovecot, "We replaced the toner")
        if notification is not None:
            break
        await asyncio.sleep(0.25)
    assert notification is not None, "the comment's notification never reached the customer"
    assert "HELP-1" in str(notification["Subject"])

    # 4. The customer's reply, quoting the notification, is a comment of only the new text.
    reply = EmailMessage()
    reply["From"] = f"Carol Customer <{CUSTOMER}>"
    reply["To"] = DESK
    reply["Subject"] = "Re: " + str(notification["Subject"])
    reply["Message-ID"] = "<desk-2@example.net>"
    reply["In-Reply-To"] = str(notification["Message-ID"])
    reply["References"] = str(notification["Message-ID"])
    reply.set_content(
        "Thanks, it prints again.\n\n"
        "On Thu, 3 Dec 2026 at 10:00, Help desk <alice@example.test> wrote:\n"
        "> We replaced the toner; please try again.\n"
    )
    dovecot.deliver(DESK, bytes(reply))
    await reload_until(page, "Thanks, it prints again.")
    last = page.locator("ol.conversation > li").last
    await expect(last).to_contain_text("Thanks, it prints again.")
    await expect(last).not_to_contain_text("wrote:")
    await expect(last).not_to_contain_text("We replaced the toner")
    await keep_screenshot(page, "issue")

    # 5. Search finds the issue by a word of a comment.
    await page.get_by_role("link", name="Issues").first.click()
    await page.get_by_label("Search").fill("toner")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("main table")).to_contain_text("HELP-1")
    await page.get_by_label("Search").fill("nonexistentword")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("main")).not_to_contain_text("Printer on fire")
    page_log.assert_clean()


async def test_a_quarantined_message_is_retried_from_the_page_and_becomes_an_issue(
    ctx: Context, page: Page, page_log: PageLog, mailgate_server: MailgateServer
) -> None:
    await add_user(ctx, AGENT, "agent", PASSWORD)
    # Mail for the project HELP before anyone created it: held, with the reason.
    held = await pipeline.take(
        ctx,
        None,
        pipeline.MessageRef(),
        customer_mail("Scanner jammed", "Paper everywhere.", Message_ID="<held-1@example.net>"),
        destination=Destination(project="HELP"),
    )
    assert held.status == "quarantined"
    await sign_in_as_agent(page)
    await page.get_by_role("link", name="Quarantine").click()
    row = page.locator("tbody tr").first
    await expect(row).to_contain_text("project HELP does not exist")
    await expect(row).to_contain_text(CUSTOMER)
    await keep_screenshot(page, "quarantine")
    await add_project(ctx, "HELP", "Help desk")  # the cause, fixed by an admin
    await row.get_by_role("button", name="Retry").click()
    await expect(page.locator(".flash")).to_contain_text("HELP-1")
    await expect(page.locator("main")).not_to_contain_text("Scanner jammed")
    await page.get_by_role("link", name="Issues").first.click()
    await expect(page.locator("main table")).to_contain_text("Scanner jammed")
    page_log.assert_clean()
