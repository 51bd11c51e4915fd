"""The admin's whole journey in Chromium, over HTTPS, against the real servers: the first-admin
link → sign in → a Microsoft integration on the emulator (pre-filled fields checked) → Authorize
through the emulator's consent page → "Connected as …" → an IMAP mailbox on Dovecot with that
credential → Test connection all green → a message delivered to Dovecot counted on the dashboard
within seconds (IDLE, no reload) → the SMTP server on Postfix → a test message delivered.

The server runs its mail workers, as `mailgate serve` does. Its key screens are kept for the docs
(`MAILGATE_SCREENSHOTS=1`)."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.tracker.users import add_user, first_admin_link
from tests.support.admin_browser import click_test_connection
from tests.support.chromium import PageLog, keep_screenshot
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.support.postfix import Postfix
from tests.support.server import MailgateServer
from tests.support.web import PASSWORD

ADMIN = "admin@example.com"
ALICE = "alice@example.test"  # the desk's mailbox, at Dovecot
CUSTOMER = "customer@example.net"  # a customer's mailbox, reached through Postfix
IMAP_STEPS = ["resolve", "connect", "tls", "greeting", "token", "authenticate", "select", "count"]


@pytest.fixture
def mailgate_server(settings: Settings, tmp_path: Path) -> Iterator[MailgateServer]:
    """`mailgate serve`: the web app with its mail workers."""
    with MailgateServer(settings, tmp_path / "tls", run_workers=True) as server:
        yield server


def customer_mail(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Carol Customer <carol@example.net>"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail["Message-ID"] = "<journey-1@example.net>"
    mail.set_content("The printer on the third floor is on fire again.")
    return bytes(mail)


async def test_the_admins_journey(
    ctx: Context,
    page: Page,
    page_log: PageLog,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postfix: Postfix,
    mailgate_server: MailgateServer,
) -> None:
    emulator.state.register_client(
        "microsoft",
        CLIENT_ID,
        CLIENT_SECRET,
        tenant_id=TENANT,
        tenant_domain="example.test",
        redirect_uris=[mailgate_server.url + "/oauth2/callback"],
    )
    emulator.state.register_account("microsoft", ALICE, "alice-at-microsoft", tenant_id=TENANT)
    page_log.allow(emulator.url)  # the provider's sign-in pages are on another origin

    # 1. The link `serve` prints on its first start creates the first admin.
    link = await first_admin_link(ctx)
    assert link is not None
    await page.goto(link.url.removeprefix(ctx.settings.base_url))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Create the first admin")
    await keep_screenshot(page, "first-admin")
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Create the admin and sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    # Signed out and in again, through the sign-in form.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    await keep_screenshot(page, "sign-in")
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")

    # 2. A Microsoft integration: endpoints and scopes pre-filled; the emulator as login host.
    await page.get_by_role("link", name="OAuth 2.0 integrations").click()
    await page.get_by_role("link", name="Add integration").click()
    await page.get_by_role("radio", name="Microsoft").click()
    await page.wait_for_url("**/integrations/new?provider=microsoft")
    await expect(page.get_by_label("Redirect URL")).to_have_value(
        mailgate_server.url + "/oauth2/callback"
    )
    await expect(page.get_by_label("Token endpoint", exact=True)).to_have_value(
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    )
    await expect(page.get_by_label("Scopes")).to_have_value(
        "https://outlook.office.com/IMAP.AccessAsUser.All\nhttps://outlook.office.com/SMTP.Send\n"
        "offline_access\nopenid\nemail"
    )
    await page.get_by_label("Name").fill("m365")
    await page.get_by_label("Client ID").fill(CLIENT_ID)
    await page.get_by_label("Client secret", exact=True).fill(CLIENT_SECRET)
    await page.get_by_label("Tenant").fill(TENANT)
    await page.get_by_text("Another login host").click()
    await page.get_by_label("Login host").fill(emulator.url)
    await page.get_by_label("Login host").blur()
    await expect(page.get_by_label("Token endpoint", exact=True)).to_have_value(
        f"{emulator.url}/{TENANT}/oauth2/v2.0/token"
    )
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".flash")).to_contain_text("Integration m365 added.")

    # 3. Authorize: the provider's sign-in and consent, back to mailgate's callback.
    await page.get_by_label("Account to sign in").fill(ALICE)
    await page.get_by_role("button", name="Authorize", exact=True).click()
    await page.get_by_role("button", name="Continue to Microsoft").click()
    await page.get_by_label("Password").fill("alice-at-microsoft")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Connected as {ALICE}")
    await page.get_by_role("link", name="Back to integration m365").click()
    await expect(page.locator("table")).to_contain_text(f"Connected as {ALICE}")

    # 4. An IMAP mailbox on Dovecot with that credential, into a project; Test connection.
    await page.get_by_role("link", name="Projects").click()
    await page.get_by_role("link", name="Add project").click()
    await page.get_by_label("Key").fill("HELP")
    await page.get_by_label("Name", exact=True).fill("Help desk")
    await page.get_by_role("button", name="Add project").click()
    await page.get_by_role("link", name="Incoming mail").click()
    await page.get_by_role("link", name="Add incoming mail server").click()
    await page.wait_for_url("**/mailboxes/new")
    await page.get_by_label("Name", exact=True).fill("support")
    await page.get_by_label("Protocol", exact=True).select_option("imap")
    await page.get_by_label("Host", exact=True).fill("127.0.0.1")
    await page.get_by_label("Port", exact=True).fill(str(dovecot.imaps_port))
    await page.get_by_label("Security", exact=True).select_option("ssl")
    await page.get_by_label("CA file").fill(str(dovecot.ca_file))
    await page.get_by_label("Username", exact=True).fill(ALICE)
    await page.get_by_role("radio", name="OAuth 2.0 credential").check()
    await page.get_by_label("Credential", exact=True).select_option(
        label=f"{ALICE} (m365, credential 1)"
    )
    await page.get_by_label("Project", exact=True).select_option("HELP")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator(".flash")).to_have_text("Mailbox support added.")
    await click_test_connection(page)
    steps = page.locator("ol.steps li")
    await expect(steps).to_have_count(len(IMAP_STEPS))
    for number, name in enumerate(IMAP_STEPS):
        await expect(steps.nth(number)).to_have_class("ok")
        await expect(steps.nth(number).locator(".step")).to_have_text(name)
    await expect(page.locator(".steps-summary")).to_have_text("All steps passed.")

    # 5. The dashboard: the mailbox goes IDLE; a customer's mail is counted without a reload.
    await page.get_by_role("link", name="Dashboard").click()
    row = page.locator('tr[data-mailbox="support"]')
    await expect(row).to_contain_text("IDLE connected", timeout=30_000)
    dovecot.deliver(ALICE, customer_mail("Printer on fire"))
    await expect(row.locator('[data-count="taken"]')).to_have_text("1", timeout=15_000)
    await expect(row).to_contain_text("HELP-1")
    await keep_screenshot(page, "dashboard")

    # 6. Outgoing mail on Postfix, with the same credential; a test email reaches the customer.
    await page.get_by_role("link", name="Outgoing mail").click()
    await page.get_by_role("link", name="Add outgoing mail server").click()
    await page.wait_for_url("**/smtp/new")
    await page.get_by_label("Name", exact=True).fill("out")
    await page.get_by_label("Host", exact=True).fill("127.0.0.1")
    await page.get_by_label("Port", exact=True).fill(str(postfix.submission_port))
    await page.get_by_label("Security", exact=True).select_option("starttls")
    await page.get_by_label("CA file").fill(str(postfix.ca_file))
    await page.get_by_label("Username", exact=True).fill(ALICE)
    await page.get_by_role("radio", name="OAuth 2.0 credential").check()
    await page.get_by_label("Credential", exact=True).select_option(
        label=f"{ALICE} (m365, credential 1)"
    )
    await page.get_by_label("From address").fill(ALICE)
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.locator(".flash")).to_contain_text("out")
    await page.get_by_label("To", exact=True).fill(CUSTOMER)
    await page.get_by_role("button", name="Send a test email").click()
    await expect(page.locator(".steps-summary")).to_have_text("All steps passed.", timeout=30_000)
    assert any(b"mailgate" in raw for raw in dovecot.messages(CUSTOMER))
    page_log.assert_clean()


async def test_a_wrong_mailbox_password_shows_the_failing_step_and_its_diagnosis(
    ctx: Context, page: Page, page_log: PageLog, dovecot: Dovecot, mailgate_server: MailgateServer
) -> None:
    await add_user(ctx, ADMIN, "admin", PASSWORD)
    await page.goto("/login")
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto("/projects/new")
    await page.get_by_label("Key").fill("HELP")
    await page.get_by_label("Name", exact=True).fill("Help desk")
    await page.get_by_role("button", name="Add project").click()
    await page.goto("/mailboxes/new")
    await page.get_by_label("Name", exact=True).fill("support")
    await page.get_by_label("Host", exact=True).fill("127.0.0.1")
    await page.get_by_label("Port", exact=True).fill(str(dovecot.imaps_port))
    await page.get_by_label("Security", exact=True).select_option("ssl")
    await page.get_by_label("CA file").fill(str(dovecot.ca_file))
    await page.get_by_label("Username", exact=True).fill(ALICE)
    await page.get_by_role("radio", name="Password").check()
    await page.get_by_label("Mail server password").fill("not-alices-password")
    await page.get_by_label("Project", exact=True).select_option("HELP")
    await page.get_by_role("button", name="Add", exact=True).click()
    await click_test_connection(page)
    failed = page.locator("ol.steps li.failed")
    await expect(failed).to_have_count(1)
    await expect(failed.locator(".step")).to_have_text("authenticate")
    await expect(page.locator(".diagnosis")).not_to_be_empty()
    await failed.evaluate("node => node.scrollIntoView({block: 'center'})")
    await keep_screenshot(page, "mailbox-test-failed")
    page_log.assert_clean()


async def test_an_agent_opening_an_admin_page_is_refused(
    ctx: Context, page: Page, page_log: PageLog
) -> None:
    await add_user(ctx, ADMIN, "admin", PASSWORD)
    await add_user(ctx, "agent@example.com", "agent", PASSWORD)
    await page.goto("/login")
    await page.get_by_label("Email").fill("agent@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/issues")
    answer = await page.goto("/integrations")
    assert answer is not None and answer.status == 403
    await expect(page.locator("body")).to_contain_text("Only an admin may open this page.")
    await page.goto("/issues")
    await expect(page.locator("nav.side")).not_to_contain_text("OAuth 2.0 integrations")
    page_log.assert_clean()
