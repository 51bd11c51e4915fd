"""The OAuth 2.0 integration pages: the list, adding one (provider first, then its pre-filled form),
its page, editing, deleting, and its buttons — Test connection, Authorize through the emulator's
pages to "Connected as …", Device code, App-only token."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from html import unescape

import httpx2
import pytest

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.oauth.integrations import IntegrationOptions, add_integration, get_integration
from mailgate.store.models import Integration
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.users import add_user
from mailgate.web.app import create_app
from tests.support.browser import press_continue
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator, sign_in, verify_device
from tests.support.keeper import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.support.web import PASSWORD, WebClient, web_client

CANARY = "canary-client-secret-5d1e"
SUPPORT = "support@contoso.com"
_CALLBACK = "https://mailgate.test/oauth2/callback"


def field_value(page: str, field_id: str) -> str:
    """The value of the input (or the text of the textarea) with that id."""
    found = re.search(rf'<input id="{field_id}"[^>]*value="([^"]*)"', page) or re.search(
        rf'<textarea id="{field_id}"[^>]*>([^<]*)</textarea>', page
    )
    assert found is not None, f"no field {field_id} in the page"
    return unescape(found.group(1))


def microsoft_form(**changes: str) -> dict[str, str]:
    """The add form as a browser sends it for a Microsoft integration, scopes untouched."""
    scopes = "\n".join(
        [
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
            "offline_access",
            "openid",
            "email",
        ]
    )
    form = {
        "provider": "microsoft",
        "name": "m365",
        "client_id": CLIENT_ID,
        "client_secret": CANARY,
        "client_secret_expires": "2027-05-01",
        "account_type": "",
        "tenant": "common",
        "cloud": "global",
        "authority": "",
        "scopes": scopes,
        "preset_scopes": scopes,
    }
    return {**form, **changes}


async def post_form(
    client: WebClient, path: str, data: dict[str, str | list[str]]
) -> httpx2.Response:
    """A form with repeated fields (the use boxes), as a browser posts it."""
    return await client.http.post(path, data={**data, "csrf": client.csrf or ""})


def with_uses(form: dict[str, str], *uses: str) -> dict[str, str | list[str]]:
    """The form with the IMAP / POP / SMTP boxes ticked (and the empty `use` every form sends)."""
    return {**form, "use": ["", *uses]}


async def stored(ctx: Context, name: str = "m365") -> Integration:
    async with ctx.db.session() as session:
        return await get_integration(session, name)


async def emulated_microsoft(ctx: Context, emulator: RunningEmulator, **options: object) -> None:
    """An integration `m365` whose login host is the emulator, with SUPPORT as an account."""
    emulator.state.register_client(
        "microsoft",
        CLIENT_ID,
        CLIENT_SECRET,
        tenant_id=TENANT,
        tenant_domain="contoso.com",
        redirect_uris=[ctx.settings.redirect_url],
    )
    emulator.state.register_account("microsoft", SUPPORT, "pw", tenant_id=TENANT)
    values: dict[str, object] = {
        "provider": "microsoft",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "tenant": "common",
        "authority": emulator.url,
    }
    await add_integration(ctx, "m365", IntegrationOptions(**(values | options)))  # type: ignore[arg-type]


async def test_the_empty_list_says_what_to_do_first(admin: WebClient) -> None:
    page = await admin.get("/integrations")
    assert page.status_code == 200
    assert "No integrations yet. Add one to connect Microsoft 365, Google or another provider." in (
        page.text
    )
    assert 'href="/integrations/new"' in page.text


async def test_adding_starts_with_the_provider(admin: WebClient) -> None:
    page = await admin.get("/integrations/new")
    assert page.status_code == 200
    assert 'method="get" action="/integrations/new"' in page.text
    for provider in ("microsoft", "google", "generic"):
        assert f'name="provider" value="{provider}"' in page.text
    assert 'name="client_id"' not in page.text


async def test_the_microsoft_form_is_pre_filled(admin: WebClient) -> None:
    page = await admin.get("/integrations/new?provider=microsoft")
    assert page.status_code == 200
    assert field_value(page.text, "redirect_url") == _CALLBACK
    assert 'data-copy="redirect_url"' in page.text
    assert field_value(page.text, "authorization_endpoint") == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    )
    assert field_value(page.text, "token_endpoint") == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    )
    scopes = field_value(page.text, "scopes").split()
    assert scopes == [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
        "email",
    ]
    assert 'value="imap" checked' in page.text and 'value="pop" data-preset' in page.text
    # Beside the form, the steps at Microsoft's console that need the redirect URL.
    assert "App registrations" in page.text and "not the Secret ID" in page.text


async def test_the_preset_follows_tenant_cloud_and_uses(admin: WebClient) -> None:
    query = "provider=microsoft&tenant=contoso.onmicrosoft.com&cloud=usgov&use=&use=pop"
    page = await admin.get(f"/integrations/new?{query}")
    assert field_value(page.text, "authorization_endpoint") == (
        "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    )
    scopes = field_value(page.text, "scopes").split()
    assert scopes[0] == "https://outlook.office365.us/POP.AccessAsUser.All"
    assert not any("IMAP" in scope or "SMTP" in scope for scope in scopes)
    bad = await admin.get("/integrations/new?provider=microsoft&tenant=not%20a%20tenant")
    assert bad.status_code == 400
    assert "Tenant &#39;not a tenant&#39; is not valid" in bad.text
    google = await admin.get("/integrations/new?provider=google")
    assert field_value(google.text, "authorization_endpoint") == (
        "https://accounts.google.com/o/oauth2/v2/auth"
    )
    assert "https://mail.google.com/" in field_value(google.text, "scopes")
    assert "In Testing, refresh tokens expire after 7 days" in google.text


async def test_adding_a_microsoft_integration(ctx: Context, admin: WebClient) -> None:
    answer = await post_form(admin, "/integrations", with_uses(microsoft_form(), "imap", "smtp"))
    assert answer.status_code == 303 and answer.headers["location"] == "/integrations/m365"
    page = await admin.get("/integrations/m365")
    assert "Integration m365 added." in page.text
    assert "set, expires 2027-05-01" in page.text
    assert "No account authorized yet." in page.text
    assert CANARY not in page.text
    row = await stored(ctx)
    assert ctx.secrets.decrypt(row.client_secret_enc or "") == CANARY
    listing = await admin.get("/integrations")
    assert 'href="/integrations/m365"' in listing.text and CANARY not in listing.text
    [event] = [e for e in await audit_log(ctx) if e["action"] == "integration.add"]
    assert event["subject"] == "m365" and event["actor"] == "admin@example.com"
    assert CANARY not in json.dumps(event)


async def test_a_use_ticked_without_javascript_adds_its_scope(
    ctx: Context, admin: WebClient
) -> None:
    # The list still shows the preset for IMAP and SMTP: the uses decide.
    form = with_uses(microsoft_form(), "imap", "pop", "smtp")
    assert (await post_form(admin, "/integrations", form)).status_code == 303
    assert "https://outlook.office.com/POP.AccessAsUser.All" in (await stored(ctx)).scopes
    # A list the admin edited is taken as it is.
    edited = microsoft_form(
        name="custom", scopes="https://outlook.office.com/IMAP.AccessAsUser.All"
    )
    assert (await post_form(admin, "/integrations", with_uses(edited, "imap"))).status_code == 303
    assert (await stored(ctx, "custom")).scopes == [
        "https://outlook.office.com/IMAP.AccessAsUser.All"
    ]


async def test_bad_input_is_said_next_to_the_form_refilled_but_the_secret(
    admin: WebClient,
) -> None:
    form = microsoft_form(name="<script>alert(1)</script>")
    answer = await post_form(admin, "/integrations", with_uses(form, "imap"))
    assert answer.status_code == 400
    assert '<p class="error" role="alert" id="form-error">Integration name' in answer.text
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert field_value(answer.text, "client_id") == CLIENT_ID
    assert field_value(answer.text, "client_secret") == ""
    assert CANARY not in answer.text
    date = await post_form(
        admin, "/integrations", with_uses(microsoft_form(client_secret_expires="May"), "imap")
    )
    assert date.status_code == 400 and "is not a date: give it as YYYY-MM-DD" in date.text


async def test_editing_keeps_the_secret_unless_a_new_one_is_given(
    ctx: Context, admin: WebClient
) -> None:
    await post_form(admin, "/integrations", with_uses(microsoft_form(), "imap", "smtp"))
    edit = await admin.get("/integrations/m365/edit")
    assert edit.status_code == 200
    assert field_value(edit.text, "client_secret") == ""
    assert "Currently <strong>set</strong>" in edit.text
    other_id = "11111111-2222-3333-4444-555555555555"
    form = microsoft_form(client_id=other_id, client_secret="")
    answer = await post_form(admin, "/integrations/m365", with_uses(form, "imap", "smtp"))
    assert answer.status_code == 303
    row = await stored(ctx)
    assert row.client_id == other_id
    assert ctx.secrets.decrypt(row.client_secret_enc or "") == CANARY
    new_secret = "another-secret-value-8c2b"
    form = microsoft_form(client_id=other_id, client_secret=new_secret, tenant=TENANT)
    await post_form(admin, "/integrations/m365", with_uses(form, "imap", "smtp"))
    row = await stored(ctx)
    assert ctx.secrets.decrypt(row.client_secret_enc or "") == new_secret
    assert row.tenant == TENANT and TENANT in (row.authorization_endpoint or "")
    changes = [e["detail"] for e in await audit_log(ctx) if e["action"] == "integration.set"]
    assert changes == [
        "changed: tenant, authorization endpoint, token endpoint, device authorization endpoint, "
        "client secret changed",
        "changed: client id",
    ]
    assert all(new_secret not in detail and CANARY not in detail for detail in changes)
    unchanged = {**form, "client_secret": ""}
    same = await post_form(admin, "/integrations/m365", with_uses(unchanged, "imap", "smtp"))
    assert same.status_code == 303
    assert "Nothing to change." in (await admin.get("/integrations/m365")).text


async def test_deleting_asks_first_and_names_the_credentials(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    await emulated_microsoft(ctx, emulator)
    await authorize_through_the_emulator(ctx, admin)
    confirm = await admin.get("/integrations/m365/delete")
    assert (
        "It has 1 authorized account" in confirm.text and 'name="with_credentials"' in confirm.text
    )
    refused = await admin.post("/integrations/m365/delete")
    assert refused.status_code == 400 and "has 1 authorized account(s)" in refused.text
    answer = await admin.post("/integrations/m365/delete", {"with_credentials": "yes"})
    assert answer.status_code == 303 and answer.headers["location"] == "/integrations"
    assert "Integration m365 deleted." in (await admin.get("/integrations")).text
    [event] = [e for e in await audit_log(ctx) if e["action"] == "integration.delete"]
    assert event["detail"] == "with its 1 credential(s)"


async def test_an_unknown_integration_is_a_404_with_the_way_back(admin: WebClient) -> None:
    for path in ("/integrations/nope", "/integrations/nope/edit", "/integrations/nope/delete"):
        page = await admin.get(path)
        assert page.status_code == 404 and "No integration named &#39;nope&#39;" in page.text
        assert 'href="/integrations"' in page.text
    assert (await admin.post("/integrations/nope/authorize")).status_code == 404


async def authorize_through_the_emulator(
    ctx: Context, admin: WebClient, login_hint: str = SUPPORT
) -> httpx2.Response:
    """Press Authorize, Continue on the start page, sign in and accept at the emulator: the
    callback page."""
    answer = await admin.post("/integrations/m365/authorize", {"login_hint": login_hint})
    assert answer.status_code == 303, answer.text
    start = answer.headers["location"]
    assert start.startswith("https://mailgate.test/oauth2/start?request=")
    to_provider = await press_continue(admin.http, start)
    assert to_provider.status_code == 303, to_provider.text
    async with httpx2.AsyncClient() as idp:
        landed = await sign_in(idp, to_provider.headers["location"], SUPPORT, "pw")
    assert landed.status_code == 302 and landed.headers["location"].startswith(_CALLBACK)
    return await admin.get(landed.headers["location"])


async def test_authorize_signs_in_at_the_provider_and_says_connected_as(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    await emulated_microsoft(ctx, emulator)
    callback = await authorize_through_the_emulator(ctx, admin)
    assert callback.status_code == 200
    assert f"Connected as {SUPPORT}" in callback.text
    assert 'href="/integrations/m365">Back to integration m365</a>' in callback.text
    page = await admin.get("/integrations/m365")
    assert f"Connected as {SUPPORT}" in page.text
    assert "Browser sign-in" in page.text and '<span class="status ok">Active</span>' in page.text
    actions = [(e["action"], e["subject"], e["actor"]) for e in await audit_log(ctx)]
    # The admin who pressed Authorize, not the anonymous visitor at the callback.
    assert ("credential.authorize", SUPPORT, "admin@example.com") in actions
    await authorize_through_the_emulator(ctx, admin)
    assert ("credential.reauthorize", SUPPORT) in [
        (e["action"], e["subject"]) for e in await audit_log(ctx)
    ]


async def test_test_connection_shows_the_steps_with_and_without_javascript(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    await emulated_microsoft(ctx, emulator)
    page = await admin.post("/integrations/m365/test")
    assert page.status_code == 200
    steps = re.findall(
        r'<li class="(ok|failed)"><span class="outcome">\w+</span>'
        r'<span class="step">(\w+)</span>',
        page.text,
    )
    assert steps == [
        ("ok", "token_endpoint"),
        ("ok", "client_authentication"),
        ("ok", "client_secret_expiry"),
    ]
    live = await admin.http.post(
        "/integrations/m365/test",
        data={"csrf": admin.csrf or ""},
        headers={"Accept": "application/x-ndjson"},
    )
    lines = [json.loads(line) for line in live.text.splitlines()]
    assert [line.get("step") for line in lines[:-1]] == [s for _, s in steps]
    assert lines[-1] == {"done": True, "ok": True, "diagnosis": None}
    emulator.state.update_client("microsoft", CLIENT_ID, client_secret="rotated-at-the-provider")
    failed = await admin.post("/integrations/m365/test")
    assert '<li class="failed"><span class="outcome">failed</span>' in failed.text
    assert '<p class="diagnosis">' in failed.text and "client secret" in failed.text.lower()


async def test_app_only_token_with_one_button(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    await emulated_microsoft(ctx, emulator, tenant=TENANT)
    answer = await admin.post("/integrations/m365/app-token")
    assert answer.status_code == 303, answer.text
    page = await admin.get("/integrations/m365")
    assert "App-only token obtained (credential 1)" in page.text
    assert "App-only token (no user)" in page.text and "App-only (client credentials)" in page.text
    async with ctx.db.session() as session:
        row = await session.get(Integration, 1)
        assert row is not None
        row.tenant = "common"
        await session.commit()
    refused = await admin.post("/integrations/m365/app-token")
    assert refused.status_code == 400
    assert "App-only access needs the tenant&#39;s ID" in refused.text


@pytest.fixture
async def gated(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[Context, asyncio.Event]]:
    """A context whose sleep waits until the test opens the gate, then passes at once: the
    device flow's polling waits until the approval is given."""
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await gate.wait()
        clock.advance(seconds)

    context = Context.open(settings, clock=clock, sleep=sleep)
    yield context, gate
    await context.close()


async def test_device_code_page_waits_and_then_says_connected_as(
    gated: tuple[Context, asyncio.Event], emulator: RunningEmulator
) -> None:
    ctx, gate = gated
    await emulated_microsoft(ctx, emulator)
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    async for admin in web_client(ctx):
        await admin.sign_in("admin@example.com")
        answer = await admin.post("/integrations/m365/device")
        assert answer.status_code == 303, answer.text
        waiting_url = answer.headers["location"]
        assert re.fullmatch(r"/integrations/m365/device/[\w-]+", waiting_url)
        page = await admin.get(waiting_url)
        assert (
            "Waiting for the approval" in page.text and 'data-device-state="waiting"' in page.text
        )
        code = field_value(page.text, "user_code")
        link = re.search(r'open <a href="([^"]+)"', page.text)
        assert link is not None
        state = await admin.get(waiting_url, headers={"Accept": "application/json"})
        assert state.json() == {"state": "waiting"}
        async with httpx2.AsyncClient() as device:
            done = await verify_device(device, unescape(link.group(1)), code, SUPPORT, "pw")
        assert done.status_code == 200
        gate.set()
        for _ in range(200):  # the poll runs as its own task: let it finish
            state = await admin.get(waiting_url, headers={"Accept": "application/json"})
            if state.json()["state"] != "waiting":
                break
            await asyncio.sleep(0.01)
        assert state.json() == {"state": "connected"}
        page = await admin.get(waiting_url)
        assert f"Connected as {SUPPORT}" in page.text
        assert "<td>Device code</td>" in (await admin.get("/integrations/m365")).text


async def test_without_an_https_base_url_authorize_is_disabled(
    settings: Settings, clock: FakeClock, ctx: Context
) -> None:
    await add_integration(
        ctx,
        "m365",
        IntegrationOptions(provider="microsoft", client_id=CLIENT_ID, client_secret=CANARY),
    )
    plain = Context.open(replace(settings, base_url="http://localhost:8443"), clock=clock)
    try:
        await add_user(plain, "admin@example.com", "admin", PASSWORD)
        # The session cookie is Secure: the browser still reaches mailgate over HTTPS (a proxy
        # in front), only the base URL is wrong.
        transport = httpx2.ASGITransport(app=create_app(plain, run_workers=False))
        async with httpx2.AsyncClient(transport=transport, base_url="https://localhost") as http:
            admin = WebClient(plain, http)
            await admin.sign_in("admin@example.com")
            page = await admin.get("/integrations/m365")
            assert "OAuth 2.0 sign-ins will not work." in page.text
            assert re.search(r'<button type="submit" disabled>Authorize</button>', page.text)
            refused = await admin.post("/integrations/m365/authorize")
            assert refused.status_code == 400 and "needs an https:// base URL" in refused.text
    finally:
        await plain.close()


async def test_an_agent_is_refused(agent: WebClient) -> None:
    for path in ("/integrations", "/integrations/new", "/credentials"):
        assert (await agent.get(path)).status_code == 403


async def test_a_custom_provider_from_its_discovery_document(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    form = await admin.get("/integrations/new?provider=generic")
    assert 'id="discovery_url" name="discovery_url"' in form.text
    assert 'id="token_endpoint" name="token_endpoint"' in form.text  # typed, not pre-filled
    assert field_value(form.text, "scopes").split() == ["openid", "email", "offline_access"]
    emulator.state.register_client("microsoft", CLIENT_ID, CLIENT_SECRET, tenant_id=TENANT)
    discovery = emulator.microsoft_discovery_url(TENANT)
    data = {
        "provider": "generic",
        "name": "idp",
        "client_id": CLIENT_ID,
        "client_secret": CANARY,
        "discovery_url": discovery,
        "token_auth": "",
        "scopes": "openid\nemail\noffline_access",
        "preset_scopes": "openid\nemail\noffline_access",
        "use": [""],
    }
    answer = await post_form(admin, "/integrations", data)
    assert answer.status_code == 303, answer.text
    page = await admin.get("/integrations/idp")
    assert "Custom" in page.text and f"<code>{discovery}</code>" in page.text
    assert f"<code>{emulator.microsoft_token_url(TENANT)}</code>" in page.text
    nowhere = await post_form(
        admin, "/integrations", {**data, "name": "nowhere", "discovery_url": "", "use": [""]}
    )
    assert nowhere.status_code == 400
    assert "needs the provider&#39;s discovery URL (--discovery-url), or its" in nowhere.text
