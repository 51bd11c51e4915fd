"""The authorization code flow with PKCE, end to end over real HTTPS: mailgate's start link and
callback, driven headlessly through oidc-provider's login and consent pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from tests.support.browser import press_continue
from tests.support.cli import AuthorizeCommand
from tests.support.oidc import OidcFlowError, OidcProvider, complete_authorization
from tests.support.server import MailgateServer

from mailgate.context import Context
from mailgate.oauth import signin
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import AuthorizationRequest, Credential

pytestmark = pytest.mark.servers
SCOPES = ["openid", "email", "offline_access", "mail"]


@pytest.fixture
async def server_ctx(mailgate_server: MailgateServer) -> AsyncIterator[Context]:
    ctx = Context.open(mailgate_server.settings)
    yield ctx
    await ctx.close()


@pytest.fixture
def provider(
    oidc_provider_factory: Callable[..., OidcProvider], mailgate_server: MailgateServer
) -> OidcProvider:
    return oidc_provider_factory(redirect_uri=f"{mailgate_server.url}/oauth2/callback")


@pytest.fixture
async def browser(mailgate_server: MailgateServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(verify=mailgate_server.tls()) as client:
        yield client


async def add(ctx: Context, provider: OidcProvider) -> None:
    client = provider.basic_client
    await add_integration(
        ctx,
        "op",
        IntegrationOptions(
            provider="generic",
            client_id=client.client_id,
            client_secret=client.client_secret,
            discovery_url=provider.discovery_url,
            scopes=SCOPES,
        ),
    )


async def sign_in(
    ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient, login: str
) -> tuple[signin.Started, str]:
    """Open mailgate's start link, sign in at the provider; return the callback URL."""
    started = await signin.begin(ctx, "op", login_hint=login)
    start = await press_continue(browser, started.start_url)
    assert start.status_code == 303
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43 and query["state"] and query["nonce"]
    answer = await complete_authorization(
        provider, authorize, login=login, redirect_uri=f"{ctx.settings.redirect_url}"
    )
    return started, answer["callback_url"]


async def test_sign_in_stores_the_account_and_refresh_works(
    server_ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient
) -> None:
    await add(server_ctx, provider)
    started, callback = await sign_in(server_ctx, provider, browser, "alice@example.test")
    page = await browser.get(callback)
    assert page.status_code == 200, page.text
    assert "Connected as alice@example.test" in page.text
    assert page.headers["cache-control"] == "no-store"
    credential = await signin.wait_for(server_ctx, started)
    assert credential.account == "alice@example.test" and credential.refresh_token_enc
    token = await TokenKeeper(server_ctx).refresh(credential.id)
    assert (await provider.introspect(token.value))["username"] == "alice@example.test"

    # The same answer again: refused, nothing changed.
    replay = await browser.get(callback)
    assert replay.status_code == 400 and "already" in replay.text


async def test_reauthorizing_updates_the_credential_in_place(
    server_ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient
) -> None:
    await add(server_ctx, provider)
    ids = []
    for _ in range(2):
        started, callback = await sign_in(server_ctx, provider, browser, "bob@example.test")
        assert (await browser.get(callback)).status_code == 200
        ids.append((await signin.wait_for(server_ctx, started)).id)
    assert ids[0] == ids[1]


async def test_wrong_state_is_refused(
    server_ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient
) -> None:
    await add(server_ctx, provider)
    _, callback = await sign_in(server_ctx, provider, browser, "carol@example.test")
    forged = callback.replace("state=", "state=forged")
    page = await browser.get(forged)
    assert page.status_code == 400 and "state is unknown" in page.text
    assert (await browser.get(callback)).status_code == 200  # the real answer still works


async def test_expired_state_is_refused(
    server_ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient
) -> None:
    await add(server_ctx, provider)
    started, callback = await sign_in(server_ctx, provider, browser, "dave@example.test")
    async with server_ctx.db.session() as session:
        row = await session.get(AuthorizationRequest, started.request_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await session.commit()
    page = await browser.get(callback)
    assert page.status_code == 400 and "10 minutes" in page.text


async def test_answer_in_another_browser_is_refused(
    server_ctx: Context,
    provider: OidcProvider,
    mailgate_server: MailgateServer,
    browser: httpx2.AsyncClient,
) -> None:
    await add(server_ctx, provider)
    _, callback = await sign_in(server_ctx, provider, browser, "erin@example.test")
    async with httpx2.AsyncClient(verify=mailgate_server.tls()) as other:
        page = await other.get(callback)
    assert page.status_code == 400 and "another browser" in page.text


async def test_pkce_verifier_mismatch_is_refused_by_the_server(
    server_ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient
) -> None:
    await add(server_ctx, provider)
    started, callback = await sign_in(server_ctx, provider, browser, "frank@example.test")
    async with server_ctx.db.session() as session:
        row = await session.get(AuthorizationRequest, started.request_id)
        assert row is not None
        row.code_verifier_enc = server_ctx.secrets.encrypt("x" * 64)
        await session.commit()
    page = await browser.get(callback)
    assert page.status_code == 400 and "invalid_grant" in page.text
    async with server_ctx.db.session() as session:
        assert (await session.scalar(Credential.__table__.select())) is None


async def test_redirect_mismatch_is_stopped_by_the_provider(
    server_ctx: Context,
    oidc_provider_factory: Callable[..., OidcProvider],
    browser: httpx2.AsyncClient,
) -> None:
    provider = oidc_provider_factory(redirect_uri="https://elsewhere.example/oauth2/callback")
    await add(server_ctx, provider)
    started = await signin.begin(server_ctx, "op")
    authorize = (await press_continue(browser, started.start_url)).headers["location"]
    with pytest.raises(OidcFlowError) as refused:
        await complete_authorization(
            provider,
            authorize,
            login="gina@example.test",
            redirect_uri=server_ctx.settings.redirect_url,
        )
    assert refused.value.status == 400
    assert "redirect_uri" in (refused.value.body or "")


async def test_consent_denied_is_explained(
    server_ctx: Context, provider: OidcProvider, browser: httpx2.AsyncClient
) -> None:
    await add(server_ctx, provider)
    started = await signin.begin(server_ctx, "op")
    authorize = (await press_continue(browser, started.start_url)).headers["location"]
    with pytest.raises(OidcFlowError) as declined:
        await complete_authorization(
            provider,
            authorize,
            login="hank@example.test",
            redirect_uri=server_ctx.settings.redirect_url,
            decline_consent=True,
        )
    assert declined.value.error == "access_denied"
    page = await browser.get(declined.value.url or "")
    assert page.status_code == 400
    assert "access_denied" in page.text and "accept the permissions" in page.text
    with pytest.raises(Exception, match="access_denied"):
        await signin.wait_for(server_ctx, started)


async def test_cli_authorize_prints_the_link_and_waits_for_the_sign_in(
    server_ctx: Context,
    provider: OidcProvider,
    browser: httpx2.AsyncClient,
    mailgate_server: MailgateServer,
) -> None:
    import os

    await add(server_ctx, provider)
    env = {
        **os.environ,
        "MAILGATE_HOME": str(server_ctx.settings.home),
        "MAILGATE_DATABASE_URL": server_ctx.settings.database_url,
        "MAILGATE_BASE_URL": mailgate_server.url,
    }
    command = await AuthorizeCommand.start(env, "op", "--login-hint", "jill@example.test")
    authorize = (await press_continue(browser, await command.link())).headers["location"]
    answer = await complete_authorization(
        provider,
        authorize,
        login="jill@example.test",
        redirect_uri=server_ctx.settings.redirect_url,
    )
    assert (await browser.get(answer["callback_url"])).status_code == 200
    view = await command.result()
    assert view["account"] == "jill@example.test" and view["status"] == "active"
