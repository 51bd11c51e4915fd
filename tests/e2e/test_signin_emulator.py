"""Sign-in against the Microsoft and Google emulator, end to end over real HTTPS: mailgate's
start link and callback, the emulator's sign-in and consent pages, and the device flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from tests.support.browser import press_continue
from tests.support.emulator import RunningEmulator, sign_in, verify_device
from tests.support.keeper import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.support.server import MailgateServer

from mailgate.context import Context
from mailgate.errors import BadInput, OperationFailed
from mailgate.oauth import signin
from mailgate.oauth.device import poll_for_approval, request_device_code
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import AuthorizationRequest

OTHER_TENANT = "3c3d7f6e-1a2b-4c5d-8e9f-0a1b2c3d4e5f"
ALICE = "alice@contoso.example"


@pytest.fixture
async def server_ctx(mailgate_server: MailgateServer) -> AsyncIterator[Context]:
    ctx = Context.open(mailgate_server.settings)
    yield ctx
    await ctx.close()


@pytest.fixture
async def browser(mailgate_server: MailgateServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(verify=mailgate_server.tls()) as client:
        yield client


async def microsoft(
    ctx: Context,
    emulator: RunningEmulator,
    *,
    tenant: str = "common",
    redirect_uri: str | None = None,
    **client: object,
) -> None:
    state = emulator.state
    state.register_client(
        "microsoft",
        CLIENT_ID,
        CLIENT_SECRET,
        tenant_id=TENANT,
        redirect_uris=[redirect_uri or ctx.settings.redirect_url],
        **client,
    )  # type: ignore[arg-type]
    state.register_tenant(OTHER_TENANT, "fabrikam.example")
    state.register_account("microsoft", ALICE, "pw", tenant_id=OTHER_TENANT)
    await add_integration(
        ctx,
        "m365",
        IntegrationOptions(
            provider="microsoft",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            tenant=tenant,
            authority=emulator.url,
        ),
    )


async def through_pages(
    ctx: Context,
    browser: httpx2.AsyncClient,
    *,
    name: str = "m365",
    login: str = ALICE,
    decision: str = "accept",
    prompt: str | None = None,
) -> tuple[signin.Started, httpx2.Response]:
    started = await signin.begin(ctx, name, login_hint=login, prompt=prompt)
    start = await press_continue(browser, started.start_url)
    assert start.status_code == 303
    async with httpx2.AsyncClient() as idp:  # the provider's pages, on the same "browser"
        idp.cookies = browser.cookies
        landed = await sign_in(idp, start.headers["location"], login, "pw", decision=decision)
    return started, landed


async def test_microsoft_common_sign_in_resolves_the_account_tenant(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    await microsoft(server_ctx, emulator)
    started, landed = await through_pages(server_ctx, browser)
    assert landed.status_code == 302
    callback = landed.headers["location"]
    assert callback.startswith(server_ctx.settings.redirect_url)
    page = await browser.get(callback)
    assert page.status_code == 200 and f"Connected as {ALICE}" in page.text, page.text
    credential = await signin.wait_for(server_ctx, started)
    assert credential.account == ALICE and credential.refresh_token_enc
    token = await TokenKeeper(server_ctx).refresh(credential.id)
    assert token.account == ALICE
    replay = await browser.get(callback)
    assert replay.status_code == 400 and "already" in replay.text


async def test_a_second_browser_cannot_take_the_sign_in_over(
    server_ctx: Context,
    emulator: RunningEmulator,
    browser: httpx2.AsyncClient,
    mailgate_server: MailgateServer,
) -> None:
    await microsoft(server_ctx, emulator)
    started = await signin.begin(server_ctx, "m365", login_hint=ALICE)
    start = await press_continue(browser, started.start_url)
    assert start.status_code == 303
    # Someone else who saw the link opens it before the sign-in ends: refused, in a page.
    async with httpx2.AsyncClient(verify=mailgate_server.tls()) as other:
        taken = await other.get(started.start_url)
        again = await press_continue(other, started.start_url)
    assert taken.status_code == 403 and "opened in another browser" in taken.text
    assert "location" not in taken.headers and "set-cookie" not in taken.headers
    assert again.status_code == 403
    # The first browser still signs in.
    async with httpx2.AsyncClient() as idp:
        idp.cookies = browser.cookies
        landed = await sign_in(idp, start.headers["location"], ALICE, "pw")
    page = await browser.get(landed.headers["location"])
    assert page.status_code == 200 and f"Connected as {ALICE}" in page.text, page.text
    assert (await signin.wait_for(server_ctx, started)).account == ALICE


async def test_wrong_and_expired_state(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    await microsoft(server_ctx, emulator)
    started, landed = await through_pages(server_ctx, browser)
    callback = landed.headers["location"]
    wrong = await browser.get(callback.replace("state=", "state=x"))
    assert wrong.status_code == 400 and "state is unknown" in wrong.text
    async with server_ctx.db.session() as session:
        row = await session.get(AuthorizationRequest, started.request_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await session.commit()
    expired = await browser.get(callback)
    assert expired.status_code == 400 and "10 minutes" in expired.text


async def test_pkce_mismatch_is_refused_by_the_emulator(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    await microsoft(server_ctx, emulator)
    started, landed = await through_pages(server_ctx, browser)
    async with server_ctx.db.session() as session:
        row = await session.get(AuthorizationRequest, started.request_id)
        assert row is not None
        row.code_verifier_enc = server_ctx.secrets.encrypt("y" * 64)
        await session.commit()
    page = await browser.get(landed.headers["location"])
    assert page.status_code == 400 and "AADSTS501481" in page.text


async def test_consent_declined_is_explained(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    await microsoft(server_ctx, emulator)
    started, landed = await through_pages(server_ctx, browser, decision="cancel")
    query = parse_qs(urlsplit(landed.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    page = await browser.get(landed.headers["location"])
    assert page.status_code == 400 and "AADSTS65004" in page.text
    assert "accept the permissions" in page.text
    with pytest.raises(OperationFailed, match="AADSTS65004"):
        await signin.wait_for(server_ctx, started)


async def test_missing_admin_consent_is_explained(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    await microsoft(server_ctx, emulator, admin_consent_required=True)
    _, landed = await through_pages(server_ctx, browser)
    page = await browser.get(landed.headers["location"])
    assert page.status_code == 400 and "AADSTS65001" in page.text
    assert "admin consent" in page.text


async def test_redirect_mismatch_stops_at_the_provider(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    await microsoft(server_ctx, emulator, redirect_uri="https://other.example/oauth2/callback")
    _, landed = await through_pages(server_ctx, browser)
    assert landed.status_code == 400 and "location" not in landed.headers
    assert "AADSTS50011" in landed.text


async def test_google_refresh_token_on_every_consent(
    server_ctx: Context, emulator: RunningEmulator, browser: httpx2.AsyncClient
) -> None:
    state = emulator.state
    state.register_client(
        "google",
        "g-1.apps.googleusercontent.com",
        "GOCSPX-1",
        redirect_uris=[server_ctx.settings.redirect_url],
    )
    state.register_account("google", "bob@gmail.example", "pw")
    await add_integration(
        server_ctx,
        "gmail",
        IntegrationOptions(
            provider="google",
            client_id="g-1.apps.googleusercontent.com",
            client_secret="GOCSPX-1",
            authority=emulator.url,
        ),
    )
    ids = set()
    for _ in range(2):  # prompt=consent makes Google send a refresh token the second time too
        started, landed = await through_pages(
            server_ctx, browser, name="gmail", login="bob@gmail.example"
        )
        page = await browser.get(landed.headers["location"])
        assert "Connected as bob@gmail.example" in page.text
        assert "no refresh token" not in page.text
        credential = await signin.wait_for(server_ctx, started)
        assert credential.refresh_token_enc
        ids.add(credential.id)
    assert len(ids) == 1  # re-authorized in place


async def test_device_flow_pending_slow_down_approved(
    ctx: Context, emulator: RunningEmulator
) -> None:
    await microsoft(ctx, emulator)
    integration, code = await request_device_code(ctx, "m365")
    assert code.verification_uri.endswith("/devicelogin") and code.message
    polls: list[str] = []

    async def sleep(seconds: float) -> None:
        # The second wait is too short: the emulator answers slow_down.
        step = seconds / 2 if len(polls) == 1 else seconds
        polls.append(f"{seconds:.0f}")
        ctx.clock.advance(step)  # type: ignore[attr-defined]
        emulator.state.advance(step)
        if len(polls) == 4:
            async with httpx2.AsyncClient() as person:
                done = await verify_device(
                    person, code.verification_uri, code.user_code, ALICE, "pw"
                )
            assert done.status_code == 200
        await asyncio.sleep(0)

    ctx.sleep = sleep
    credential = await poll_for_approval(ctx, integration, code)
    assert credential.account == ALICE and credential.grant_type == "device_code"
    interval = code.interval
    assert polls == [str(interval), str(interval), str(interval + 5), str(interval + 5)]
    records = emulator.state.requests(
        endpoint="token", grant_type="urn:ietf:params:oauth:grant-type:device_code"
    )
    assert [r.error for r in records] == [
        "authorization_pending",
        "slow_down",
        "authorization_pending",
        None,
    ]


@pytest.mark.parametrize("ending", ["expired", "declined"])
async def test_device_flow_expired_or_declined(
    ctx: Context, emulator: RunningEmulator, ending: str
) -> None:
    await microsoft(ctx, emulator)
    integration, code = await request_device_code(ctx, "m365")

    async def sleep(seconds: float) -> None:
        step = seconds + (code.expires_in if ending == "expired" else 0)
        ctx.clock.advance(step)  # type: ignore[attr-defined]
        emulator.state.advance(step)
        if ending == "declined":
            emulator.state.approve_device_code(code.user_code, ALICE, deny=True)
        await asyncio.sleep(0)

    ctx.sleep = sleep
    with pytest.raises(
        OperationFailed, match=ending.removesuffix("d") if ending == "declined" else "expired"
    ):
        await poll_for_approval(ctx, integration, code)


async def test_google_device_flow_is_refused_for_mail(
    ctx: Context, emulator: RunningEmulator
) -> None:
    emulator.state.register_client("google", "g-2.apps.googleusercontent.com", "s")
    await add_integration(
        ctx,
        "gmail",
        IntegrationOptions(
            provider="google",
            client_id="g-2.apps.googleusercontent.com",
            client_secret="s",
            authority=emulator.url,
        ),
    )
    with pytest.raises(BadInput, match="device flow"):
        await request_device_code(ctx, "gmail")
