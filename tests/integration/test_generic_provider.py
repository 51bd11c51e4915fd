"""mailgate against a real third-party authorization server (oidc-provider), as a generic
provider configured from its discovery document."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from tests.support.cli import Cli
from tests.support.oidc import OidcClient, OidcProvider, sign_in_with_pages
from tests.support.steps import heard_live

from mailgate.context import Context
from mailgate.errors import NeedsReauthorization
from mailgate.oauth.check import check_integration
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenResponse
from mailgate.oauth.flows import authorize_client_credentials
from mailgate.oauth.integrations import IntegrationOptions, add_integration, set_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import Integration

pytestmark = pytest.mark.servers
SCOPES = ["openid", "email", "offline_access", "mail"]


async def add(
    ctx: Context, provider: OidcProvider, client: OidcClient, **extra: object
) -> Integration:
    return await add_integration(
        ctx,
        f"op-{client.client_id}",
        IntegrationOptions(
            provider="generic",
            client_id=client.client_id,
            client_secret=client.client_secret,
            discovery_url=provider.discovery_url,
            scopes=SCOPES,
            **extra,  # type: ignore[arg-type]
        ),
    )


async def test_discovery_fills_the_endpoints_and_prefers_basic(
    ctx: Context, oidc_provider: OidcProvider
) -> None:
    integration = await add(ctx, oidc_provider, oidc_provider.basic_client)
    assert integration.token_endpoint == oidc_provider.token_endpoint
    assert integration.authorization_endpoint == oidc_provider.authorization_endpoint
    assert integration.device_authorization_endpoint == oidc_provider.device_authorization_endpoint
    assert integration.token_auth == "client_secret_basic"
    assert integration.app_scopes == ["mail"]


@pytest.mark.parametrize("which", ["basic", "post"])
async def test_refresh_of_tokens_obtained_through_the_login_pages(
    ctx: Context, oidc_provider: OidcProvider, which: str
) -> None:
    client = oidc_provider.basic_client if which == "basic" else oidc_provider.post_client
    integration = await add(ctx, oidc_provider, client, token_auth=client.auth_method)
    tokens = await sign_in_with_pages(
        oidc_provider,
        client_id=client.client_id,
        client_secret=client.client_secret,
        redirect_uri=oidc_provider.redirect_uri,
        login=f"{which}@example.test",
        scopes=SCOPES,
        auth_method=client.auth_method,
    )
    cred = await store_grant(
        ctx,
        integration,
        f"{which}@example.test",
        "authorization_code",
        TokenResponse.from_json(tokens),
    )
    keeper = TokenKeeper(ctx)
    refreshed = await keeper.refresh(cred.id)
    assert refreshed.value != tokens["access_token"]
    info = await oidc_provider.introspect(refreshed.value)
    assert info["active"] is True
    assert info["username"] == f"{which}@example.test"
    # The rotated refresh token was stored: a second refresh works (oidc-provider revokes the
    # whole grant when a rotated-away refresh token is reused, so this fails if it was not).
    again = await keeper.refresh(cred.id)
    assert (await oidc_provider.introspect(again.value))["active"] is True


async def test_client_credentials(ctx: Context, oidc_provider: OidcProvider) -> None:
    await add(ctx, oidc_provider, oidc_provider.basic_client)
    cred = await authorize_client_credentials(ctx, "op-mailgate-basic")
    assert cred.account == "app" and cred.grant_type == "client_credentials"
    token = await TokenKeeper(ctx).access_token(cred.id)
    info = await oidc_provider.introspect(token.value)
    assert info["active"] is True
    assert info["username"] == oidc_provider.client_credentials_username


async def test_revoked_grant_needs_reauthorization_and_keeps_the_refresh_token(
    ctx: Context, oidc_provider: OidcProvider
) -> None:
    client = oidc_provider.post_client
    integration = await add(ctx, oidc_provider, client, token_auth=client.auth_method)
    tokens = await sign_in_with_pages(
        oidc_provider,
        client_id=client.client_id,
        client_secret=client.client_secret,
        redirect_uri=oidc_provider.redirect_uri,
        login="gone@example.test",
        scopes=SCOPES,
        auth_method=client.auth_method,
    )
    cred = await store_grant(
        ctx, integration, "gone@example.test", "authorization_code", TokenResponse.from_json(tokens)
    )
    form = {"token": tokens["refresh_token"]}
    auth = client.token_request_auth(form)
    async with httpx2.AsyncClient() as http:
        revoked = await http.post(
            oidc_provider.revocation_endpoint, data=form, auth=auth or httpx2.USE_CLIENT_DEFAULT
        )
    assert revoked.status_code == 200
    with pytest.raises(NeedsReauthorization, match="invalid_grant"):
        await TokenKeeper(ctx).refresh(cred.id)
    async with ctx.db.session() as session:
        row = await session.get(type(cred), cred.id)
        assert row is not None
        assert row.status == "needs-reauthorization"
        assert row.refresh_token_enc is not None
        assert "invalid_grant" in (row.last_error or "")


async def test_integration_test_tells_a_wrong_secret(
    ctx: Context, oidc_provider: OidcProvider
) -> None:
    await add(ctx, oidc_provider, oidc_provider.basic_client)
    good = await check_integration(ctx, "op-mailgate-basic")
    assert good.ok, good.as_json()
    assert [s.step for s in good.steps][:3] == [
        "discovery",
        "token_endpoint",
        "client_authentication",
    ]
    await set_integration(ctx, "op-mailgate-basic", IntegrationOptions(client_secret="wrong"))
    bad = await check_integration(ctx, "op-mailgate-basic")
    assert not bad.ok
    assert bad.steps[-1].step == "client_authentication"
    assert "invalid_client" in (bad.diagnosis or "")


async def test_integration_test_steps_arrive_while_it_runs(
    ctx: Context, oidc_provider: OidcProvider
) -> None:
    """What a page shows live: "discovery" reaches the consumer of `live` while the token
    endpoint is still being asked, then the other steps, each once, then the report."""
    await add(ctx, oidc_provider, oidc_provider.basic_client)
    arrived, report = await heard_live(
        lambda on_step: check_integration(ctx, "op-mailgate-basic", on_step=on_step)
    )
    assert arrived[0] == ("discovery", False)
    steps = ["discovery", "token_endpoint", "client_authentication", "client_secret_expiry"]
    assert [step for step, _ in arrived] == [s.step for s in report.steps] == steps
    assert report.ok, report.as_json()


def test_cli_generic_integration_and_client_credentials(
    cli: Cli, oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    client = oidc_provider.basic_client
    secret = tmp_path / "secret"
    secret.write_text(f"{client.client_secret}\n")
    added = cli(
        "integration",
        "add",
        "op",
        "--provider",
        "generic",
        "--client-id",
        client.client_id,
        "--client-secret-file",
        str(secret),
        "--discovery-url",
        oidc_provider.discovery_url,
        "--scope",
        "openid email offline_access mail",
        "--json",
    )
    assert added.code == 0, added.stderr
    assert added.json()["redirect_url"] == "https://localhost:8443/oauth2/callback"
    assert cli("integration", "test", "op").code == 0
    authorized = cli("integration", "authorize", "op", "--client-credentials", "--json")
    assert authorized.code == 0, authorized.stderr
    listed = cli("credential", "list", "--json").json()
    assert [(c["account"], c["status"]) for c in listed] == [("app", "active")]
    everything = added.stdout + authorized.stdout + cli("credential", "show", "1").stdout
    assert client.client_secret is not None and client.client_secret not in everything


async def test_set_keeps_custom_app_scopes(ctx: Context, oidc_provider: OidcProvider) -> None:
    await add(ctx, oidc_provider, oidc_provider.basic_client, app_scopes=["mail", "extra"])
    changed = await set_integration(
        ctx, "op-mailgate-basic", IntegrationOptions(token_auth="client_secret_post")
    )
    assert changed.app_scopes == ["mail", "extra"]
    rescoped = await set_integration(
        ctx, "op-mailgate-basic", IntegrationOptions(scopes=["openid", "mail"])
    )
    assert rescoped.app_scopes == ["mail"]
