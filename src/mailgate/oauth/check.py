"""`integration test`: can mailgate talk to the provider, and does the provider accept the client?

Client authentication is checked without signing anyone in: a token request with a deliberately
invalid authorization code. Servers authenticate the client first, so `invalid_grant` means the
client ID and secret were accepted, and `invalid_client` means they were not.
"""

from __future__ import annotations

import secrets

from mailgate.context import Context
from mailgate.errors import MailgateError, Transient
from mailgate.oauth import errors as provider_errors
from mailgate.oauth.endpoint import TokenRequestRefused, request_token
from mailgate.oauth.integrations import get_integration, integration_warnings
from mailgate.oauth.tokens import TokenKeeper
from mailgate.providers import discover
from mailgate.steps import StepListener, StepReport
from mailgate.store.vocabulary import GrantType

INVALID_CODE = "mailgate-connection-test-invalid-code"


CheckResult = StepReport


async def check_integration(
    ctx: Context, name: str, on_step: StepListener | None = None
) -> CheckResult:
    """Run the checks in order; the ones after a failed step are not run. `on_step` hears each
    step as it is recorded."""
    async with ctx.db.session() as session:
        integration = await get_integration(session, name)
    result = CheckResult(on_step=on_step)

    if integration.discovery_url:
        try:
            await discover(integration.discovery_url, ctx.http)
        except MailgateError as exc:
            return result.fail("discovery", str(exc), str(exc))
        result.record("discovery", True, f"read {integration.discovery_url}")

    client = TokenKeeper(ctx).client_config(integration)
    answered = f"{integration.token_endpoint} answered"
    try:
        await request_token(
            client,
            GrantType.AUTHORIZATION_CODE,
            code=INVALID_CODE,
            redirect_uri=ctx.settings.redirect_url,
            code_verifier=secrets.token_urlsafe(48),
        )
    except Transient as exc:
        return result.fail(
            "token_endpoint",
            str(exc),
            f"mailgate cannot reach the token endpoint {integration.token_endpoint}: check the "
            "host's network, DNS and proxy (HTTPS_PROXY), and the integration's endpoints.",
        )
    except TokenRequestRefused as refused:
        result.record("token_endpoint", True, answered)
        error = refused.error
        kind = provider_errors.disposition(error)
        if kind is provider_errors.Disposition.CLIENT or error.error != "invalid_grant":
            explanation = provider_errors.explain(error, provider=integration.provider)
            return result.fail("client_authentication", explanation, explanation)
        result.record(
            "client_authentication",
            True,
            "client ID and secret accepted (the test code was refused, as expected)"
            if client.client_secret
            else "public client: the provider knows the client ID (no secret to check)",
        )
    else:
        result.record("token_endpoint", True, answered)
        accepted = (
            "the provider accepted an invalid authorization code, which no real server does: "
            "check that the token endpoint is the provider's"
        )
        return result.fail("client_authentication", accepted, accepted)

    warnings = integration_warnings(integration, ctx.clock())
    expiry_ok = not any("expired on" in w for w in warnings)
    if not expiry_ok:
        result.diagnosis = warnings[0]
    result.record(
        "client_secret_expiry",
        expiry_ok,
        " ".join(warnings)
        if warnings
        else (
            f"expires on {integration.client_secret_expires}"
            if integration.client_secret_expires
            else "no expiry date recorded (give it with --client-secret-expires)"
        ),
    )
    return result
