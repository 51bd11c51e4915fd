"""The OAuth 2.0 integration pages in Chromium: an admin signs in, adds a Microsoft integration
whose login host is the emulator (the pre-filled fields checked, and changed in place as the
choices change), tests it, authorizes an account through the emulator's sign-in and consent pages
back to mailgate's callback, and finds "Connected as …" on the integration's page and among the
credentials. Scripts typed into the free-text fields stay text."""

from __future__ import annotations

import re

import httpx2
from playwright.async_api import Page, expect

from mailgate.context import Context
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from tests.support.admin_browser import click_test_connection, sign_in_as_admin
from tests.support.chromium import PageLog, keep_screenshot
from tests.support.emulator import RunningEmulator, verify_device
from tests.support.keeper import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.support.server import MailgateServer

SUPPORT = "support@contoso.com"
SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'


def emulated_tenant(emulator: RunningEmulator, server: MailgateServer) -> None:
    """The app registration at the emulator's Microsoft, and the account that signs in."""
    emulator.state.register_client(
        "microsoft",
        CLIENT_ID,
        CLIENT_SECRET,
        tenant_id=TENANT,
        tenant_domain="contoso.com",
        redirect_uris=[server.url + "/oauth2/callback"],
    )
    emulator.state.register_account("microsoft", SUPPORT, "pw", tenant_id=TENANT)


async def choose_microsoft(page: Page) -> None:
    await page.goto("/integrations")
    await page.get_by_role("link", name="Add integration").click()
    # Choosing opens the provider's form at once (the script submits the choice).
    await page.get_by_role("radio", name="Microsoft").click()
    await page.wait_for_url("**/integrations/new?provider=microsoft")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Add an OAuth 2.0 integration")
    await expect(page.get_by_label("Client ID")).to_be_visible()


async def test_an_admin_adds_a_microsoft_integration_and_authorizes_an_account(
    ctx: Context,
    page: Page,
    page_log: PageLog,
    emulator: RunningEmulator,
    mailgate_server: MailgateServer,
) -> None:
    emulated_tenant(emulator, mailgate_server)
    page_log.allow(emulator.url)  # the provider's pages are on another origin
    await sign_in_as_admin(ctx, page)
    await page.goto("/integrations")
    await expect(page.locator(".empty")).to_contain_text("No integrations yet.")

    await choose_microsoft(page)
    assert "provider=microsoft" in page.url
    await expect(page.get_by_label("Redirect URL")).to_have_value(
        mailgate_server.url + "/oauth2/callback"
    )
    await expect(page.get_by_role("button", name="Copy")).to_be_visible()
    await expect(page.get_by_label("Authorization endpoint", exact=True)).to_have_value(
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    )
    await expect(page.get_by_label("Token endpoint", exact=True)).to_have_value(
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    )
    scopes = page.get_by_label("Scopes")
    await expect(scopes).to_have_value(
        "https://outlook.office.com/IMAP.AccessAsUser.All\nhttps://outlook.office.com/SMTP.Send\n"
        "offline_access\nopenid\nemail"
    )
    await expect(page.get_by_label("IMAP")).to_be_checked()
    await expect(page.locator("aside.guide")).to_contain_text("App registrations")
    await keep_screenshot(page, "integration-new")

    await page.get_by_label("Name").fill("m365")
    await page.get_by_label("Client ID").fill(CLIENT_ID)
    await page.get_by_label("Client secret", exact=True).fill(CLIENT_SECRET)
    await page.get_by_label("Client secret expires").fill("2027-05-01")
    # Ticking POP adds its scope; the login host moves the endpoints — in place.
    await page.get_by_label("POP").check()
    await expect(scopes).to_have_value(re.compile(r"https://outlook.office.com/POP.AccessAs"))
    await page.get_by_label("POP").uncheck()
    await expect(scopes).not_to_have_value(re.compile("POP.AccessAsUser.All"))
    await page.get_by_text("Another login host").click()
    await page.get_by_label("Login host").fill(emulator.url)
    await page.get_by_label("Login host").blur()
    await expect(page.get_by_label("Authorization endpoint", exact=True)).to_have_value(
        emulator.url + "/common/oauth2/v2.0/authorize"
    )
    await page.get_by_role("button", name="Save").click()

    await expect(page.locator(".flash")).to_contain_text("Integration m365 added.")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Integration m365")
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text("set, expires 2027-05-01")
    await expect(facts).not_to_contain_text(CLIENT_SECRET)

    await click_test_connection(page)
    await expect(page.locator("p.steps-summary")).to_have_text("All steps passed.")
    await expect(page.locator("ol.steps li.ok")).to_have_count(3)
    await keep_screenshot(page, "integration-test")

    await page.get_by_label("Account to sign in").fill(SUPPORT)
    await page.get_by_role("button", name="Authorize", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Microsoft")
    await page.get_by_role("button", name="Continue to Microsoft").click()
    # The emulator's sign-in and consent pages (a stand-in for Microsoft's).
    await page.get_by_label("Email, phone, or Skype").fill(SUPPORT)
    await page.get_by_label("Password").fill("pw")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Accept").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Connected as {SUPPORT}")
    assert page.url.startswith(mailgate_server.url + "/oauth2/callback?")
    await keep_screenshot(page, "integration-connected")
    await page.get_by_role("link", name="Back to integration m365").click()
    await expect(page.locator("table")).to_contain_text(f"Connected as {SUPPORT}")
    await expect(page.locator("table")).to_contain_text("Active")
    await keep_screenshot(page, "integration")

    await page.get_by_role("link", name="Credentials", exact=True).click()
    row = page.locator("tbody tr").first
    await expect(row).to_contain_text(SUPPORT)
    await expect(row).to_contain_text("Browser sign-in")
    await keep_screenshot(page, "credentials")
    await row.get_by_role("link", name=SUPPORT).click()
    await expect(page.locator("table")).to_contain_text("authorized")
    await keep_screenshot(page, "credential")
    page_log.assert_clean()


async def test_scripts_in_the_integration_fields_stay_text(
    ctx: Context, page: Page, page_log: PageLog
) -> None:
    await sign_in_as_admin(ctx, page)
    await choose_microsoft(page)
    await page.get_by_label("Name").fill(SCRIPT)
    await page.get_by_label("Client ID").fill(IMAGE)
    await page.get_by_label("Scopes").fill(f"{SCRIPT}\n{IMAGE}")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("alert").first).to_contain_text("Integration name")
    await expect(page.get_by_role("alert").first).to_contain_text(SCRIPT)
    await expect(page.get_by_label("Client ID")).to_have_value(IMAGE)

    await page.get_by_label("Name").fill("xss")
    await page.get_by_label("Tenant").fill(TENANT)
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".flash")).to_contain_text("Integration xss added.")
    await expect(page.locator("dl.facts")).to_contain_text(IMAGE)
    await expect(page.locator("dl.facts")).to_contain_text(SCRIPT)
    await page.goto("/integrations")
    await expect(page.locator("tbody")).to_contain_text(IMAGE)
    await page.goto("/integrations/xss/edit")
    await expect(page.get_by_label("Client ID")).to_have_value(IMAGE)
    assert page_log.dialogs == []
    page_log.assert_clean()


async def test_the_device_code_page_updates_itself_when_approved(
    ctx: Context,
    page: Page,
    page_log: PageLog,
    emulator: RunningEmulator,
    mailgate_server: MailgateServer,
) -> None:
    emulated_tenant(emulator, mailgate_server)
    emulator.state.set_lifetimes(device_poll_interval=1)
    options = IntegrationOptions(
        provider="microsoft",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        authority=emulator.url,
    )
    await add_integration(ctx, "m365", options)
    await sign_in_as_admin(ctx, page)
    await page.goto("/integrations/m365")
    await page.get_by_role("button", name="Device code").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Device code for m365")
    await expect(page.locator(".notice")).to_contain_text("Waiting for the approval")
    code = await page.get_by_label("Code").input_value()
    verification = await page.locator("ol.guide a").first.get_attribute("href")
    assert verification is not None and verification.startswith(emulator.url)
    await keep_screenshot(page, "integration-device")
    # The account owner approves on another device; this page notices by itself.
    async with httpx2.AsyncClient() as device:
        await verify_device(device, verification, code, SUPPORT, "pw")
    await expect(page.locator(".flash")).to_contain_text(f"Connected as {SUPPORT}", timeout=20_000)
    page_log.assert_clean()
