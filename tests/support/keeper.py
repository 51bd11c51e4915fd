"""Set-ups shared by the token keeper tests: an integration and a credential at the emulator."""

from __future__ import annotations

from dataclasses import dataclass

from mailgate.context import Context
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenResponse
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.store.models import Credential, Integration
from mailgate_emulator.state import IssuedGrant
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
CLIENT_SECRET = "Xx8Q~emulator-client-secret-value"
ACCOUNT = "alice@contoso.example"


def access_token_for(
    emulator: RunningEmulator, account: str, scope: str = "IMAP.AccessAsUser.All"
) -> str:
    """An access token of `account` from the emulator's Microsoft, with no credential stored:
    for the protocol clients' own tests."""
    emulator.state.register_client("microsoft", CLIENT_ID, CLIENT_SECRET, tenant_id=TENANT)
    grant = emulator.state.create_grant(
        "microsoft",
        CLIENT_ID,
        account,
        [f"https://outlook.office.com/{scope}"],
        with_access_token=True,
        tenant_id=TENANT,
    )
    assert grant.access_token
    return grant.access_token


@dataclass
class Setup:
    integration: Integration
    credential: Credential
    grant: IssuedGrant


class Timeline:
    """Moves mailgate's clock and the emulator's together."""

    def __init__(self, clock: FakeClock, emulator: RunningEmulator) -> None:
        self.clock = clock
        self.emulator = emulator

    def advance(self, **delta: float) -> None:
        before = self.clock()
        after = self.clock.advance(**delta)
        self.emulator.state.advance((after - before).total_seconds())


async def microsoft_credential(
    ctx: Context,
    emulator: RunningEmulator,
    *,
    name: str = "m365",
    secret: str = CLIENT_SECRET,
    account: str = ACCOUNT,
) -> Setup:
    state = emulator.state
    state.register_client(
        "microsoft", CLIENT_ID, secret, tenant_id=TENANT, tenant_domain="contoso.example"
    )
    integration = await add_integration(
        ctx,
        name,
        IntegrationOptions(
            provider="microsoft",
            client_id=CLIENT_ID,
            client_secret=secret,
            tenant=TENANT,
            authority=emulator.url,
            uses=["imap", "smtp"],
        ),
    )
    grant = state.create_grant(
        "microsoft",
        CLIENT_ID,
        account,
        integration.scopes,
        with_access_token=True,
        tenant_id=TENANT,
    )
    return Setup(integration, await store(ctx, integration, account, grant), grant)


async def google_credential(
    ctx: Context, emulator: RunningEmulator, *, testing: bool = False
) -> Setup:
    state = emulator.state
    state.register_client(
        "google", "g-client.apps.googleusercontent.com", "GOCSPX-secret", testing=testing
    )
    integration = await add_integration(
        ctx,
        "gmail",
        IntegrationOptions(
            provider="google",
            client_id="g-client.apps.googleusercontent.com",
            client_secret="GOCSPX-secret",
            authority=emulator.url,
        ),
    )
    grant = state.create_grant(
        "google",
        "g-client.apps.googleusercontent.com",
        "bob@gmail.example",
        integration.scopes,
        offline=True,
        with_access_token=True,
    )
    return Setup(integration, await store(ctx, integration, "bob@gmail.example", grant), grant)


async def store(
    ctx: Context, integration: Integration, account: str, grant: IssuedGrant
) -> Credential:
    assert grant.access_token is not None
    response = TokenResponse.from_json(
        {
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "expires_in": grant.expires_in,
            "scope": grant.scope,
            "token_type": "Bearer",
        }
    )
    return await store_grant(ctx, integration, account, "authorization_code", response)


async def reload(ctx: Context, credential_id: int) -> Credential:
    async with ctx.db.session() as session:
        row = await session.get(Credential, credential_id)
        assert row is not None
        return row


async def reload_integration(ctx: Context, integration_id: int) -> Integration:
    async with ctx.db.session() as session:
        row = await session.get(Integration, integration_id)
        assert row is not None
        return row


async def reauthorize(ctx: Context, emulator: RunningEmulator, setup: Setup) -> Credential:
    """The admin signs the same account in again: a new grant stored on the same credential."""
    grant = emulator.state.create_grant(
        "microsoft",
        CLIENT_ID,
        setup.credential.account,
        setup.integration.scopes,
        with_access_token=True,
        tenant_id=TENANT,
    )
    return await store(ctx, setup.integration, setup.credential.account, grant)
