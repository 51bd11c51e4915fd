"""Grant flows that obtain a credential. This module: client credentials (RFC 6749 §4.4).

The interactive flows (authorization code with PKCE, device) build on the same pieces:
`request_token` for the HTTP exchange, `store_grant` for the result.
"""

from __future__ import annotations

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.oauth import errors as provider_errors
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenRequestRefused, request_token
from mailgate.oauth.integrations import get_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.providers import MICROSOFT_TENANT_ALIASES
from mailgate.store.models import Credential
from mailgate.store.vocabulary import GrantType

APP_ACCOUNT = "app"


async def authorize_client_credentials(ctx: Context, name: str) -> Credential:
    """Obtain an app-only token for the integration and store it as the credential `app`."""
    ctx.settings.require_https_base_url()
    async with ctx.db.session() as session:
        integration = await get_integration(session, name)
    if integration.provider == "google":
        raise BadInput(
            "Google does not offer client credentials for mail: authorize a user account "
            f"(`mailgate integration authorize {name}`) instead."
        )
    if not integration.client_secret_enc:
        raise BadInput(
            f"Integration {name!r} has no client secret, and client credentials need one: add it "
            f"with `mailgate integration set {name} --client-secret-file FILE`."
        )
    if integration.provider == "microsoft" and integration.tenant in MICROSOFT_TENANT_ALIASES:
        raise BadInput(
            f"App-only access needs the tenant's ID, not {integration.tenant!r}: run `mailgate "
            f"integration set {name} --tenant TENANT_ID` with the directory (tenant) ID from Entra ID."
        )
    if not integration.app_scopes:
        raise BadInput(
            f"Integration {name!r} has no scopes for client credentials: give them with "
            f"`mailgate integration set {name} --app-scope SCOPE`."
        )
    client = TokenKeeper(ctx).client_config(integration)
    try:
        response = await request_token(
            client, GrantType.CLIENT_CREDENTIALS, scope=" ".join(integration.app_scopes)
        )
    except TokenRequestRefused as refused:
        raise provider_errors.as_exception(
            refused.error,
            provider_errors.explain(refused.error, provider=integration.provider),
        ) from None
    return await store_grant(ctx, integration, APP_ACCOUNT, GrantType.CLIENT_CREDENTIALS, response)
