"""The device authorization grant (RFC 8628): sign in on another device with a short code.

For hosts with no public HTTPS URL. mailgate asks the device authorization endpoint for a code,
shows the verification URL and the code, and polls the token endpoint at the server's interval
(§3.4), slowing down by 5 seconds on `slow_down` (§3.5), until the user approves, declines, or
the code expires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2

from mailgate.context import Context
from mailgate.errors import BadInput, OperationFailed, Transient
from mailgate.oauth import errors as provider_errors
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import ClientConfig, TokenRequestRefused, request_token
from mailgate.oauth.integrations import get_integration
from mailgate.oauth.signin import identify
from mailgate.oauth.tokens import TokenKeeper
from mailgate.providers import GOOGLE_MAIL_SCOPE, describe_http_error
from mailgate.store.models import Credential, Integration
from mailgate.store.vocabulary import GrantType

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
SLOW_DOWN_STEP = 5  # §3.5: "the interval MUST be increased by 5 seconds for this and all
# subsequent requests"
MAX_INTERVAL = 60  # seconds between polls, at most, whatever the provider asks
MAX_EXPIRES_IN = 30 * 60  # a device code is polled for at most this long


@dataclass(frozen=True)
class DeviceCode:
    """What to show the user, and what to poll with (the device code stays in memory)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    message: str | None
    device_code: str = field(repr=False)


async def request_device_code(ctx: Context, name: str) -> tuple[Integration, DeviceCode]:
    async with ctx.db.session() as session:
        integration = await get_integration(session, name)
    if not integration.device_authorization_endpoint:
        raise BadInput(
            f"Integration {name!r} has no device authorization endpoint: set it with `mailgate "
            f"integration set {name} --device-authorization-endpoint URL`, or sign in without "
            "--device."
        )
    if integration.provider == "google" and GOOGLE_MAIL_SCOPE in integration.scopes:
        # developers.google.com/identity/protocols/oauth2/limited-input-device: only openid,
        # email, profile and a few Drive/YouTube scopes are allowed for devices.
        raise BadInput(
            "Google's device flow does not allow the mail scope (https://mail.google.com/): "
            f"sign in with a browser instead, `mailgate integration authorize {name}`."
        )
    client = TokenKeeper(ctx).client_config(integration)
    form = {"client_id": client.client_id, "scope": " ".join(integration.scopes)}
    auth: tuple[str, str] | None = None
    if client.client_secret and client.token_auth == "client_secret_post":
        form["client_secret"] = client.client_secret
    elif client.client_secret:
        auth = (client.client_id, client.client_secret)
    try:
        async with ctx.http() as http:
            if auth:
                answer = await http.post(
                    integration.device_authorization_endpoint, data=form, auth=auth
                )
            else:
                answer = await http.post(integration.device_authorization_endpoint, data=form)
        body = answer.json()
    except httpx2.HTTPError as exc:
        raise Transient(
            f"The device authorization endpoint {integration.device_authorization_endpoint} could "
            f"not be reached ({describe_http_error(exc)}): check the network and try again."
        ) from None
    except ValueError:
        raise OperationFailed(
            f"The device authorization endpoint answered HTTP {answer.status_code} without JSON: "
            "check the integration's --device-authorization-endpoint."
        ) from None
    if answer.status_code != 200 or "device_code" not in body:
        refusal = provider_errors.ProviderError(
            str(body.get("error", "invalid_request")),
            str(body.get("error_description", "")),
            answer.status_code,
            integration.device_authorization_endpoint,
        )
        raise provider_errors.as_exception(
            refusal, provider_errors.explain(refusal, provider=integration.provider)
        )
    # Google names it verification_url (its docs), RFC 8628 verification_uri.
    uri = body.get("verification_uri") or body.get("verification_url")
    return integration, DeviceCode(
        device_code=str(body["device_code"]),
        user_code=str(body.get("user_code", "")),
        verification_uri=str(uri),
        verification_uri_complete=body.get("verification_uri_complete"),
        # Bounded whatever the provider says: no busy loop, no poll that outlives a code.
        expires_in=min(_number(body.get("expires_in"), 900), MAX_EXPIRES_IN),
        interval=min(max(_number(body.get("interval"), DEFAULT_INTERVAL), 1), MAX_INTERVAL),
        message=body.get("message"),
    )


def _number(value: object, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


async def poll_for_approval(
    ctx: Context,
    integration: Integration,
    code: DeviceCode,
    *,
    on_wait: Callable[[int], None] | None = None,
) -> Credential:
    """Poll until approved (then store the credential), declined or expired."""
    client: ClientConfig = TokenKeeper(ctx).client_config(integration)
    interval = code.interval
    deadline = ctx.clock().timestamp() + code.expires_in
    while True:
        await ctx.sleep(interval)
        try:
            response = await request_token(client, DEVICE_GRANT, device_code=code.device_code)
        except Transient:
            # §3.5: on a connection timeout, back off like slow_down and try again.
            interval = min(interval + SLOW_DOWN_STEP, MAX_INTERVAL)
            if ctx.clock().timestamp() > deadline:
                raise
            continue
        except TokenRequestRefused as refused:
            error = refused.error.error
            if error == "authorization_pending":
                if ctx.clock().timestamp() > deadline:
                    raise OperationFailed(
                        "The code expired before the sign-in was approved: run the command again."
                    ) from None
                if on_wait:
                    on_wait(interval)
                continue
            if error == "slow_down":
                interval = min(interval + SLOW_DOWN_STEP, MAX_INTERVAL)
                if ctx.clock().timestamp() > deadline:
                    raise OperationFailed(
                        "The code expired before the sign-in was approved: run the command again."
                    ) from None
                continue
            if error == "expired_token" or refused.error.aadsts == 70019:
                raise OperationFailed(
                    "The code expired before the sign-in was approved: run the command again and "
                    f"enter the new code within {code.expires_in // 60} minutes."
                ) from None
            if error in ("access_denied", "authorization_declined"):
                raise OperationFailed(
                    "The sign-in was declined on the other device: run the command again and "
                    "approve it."
                ) from None
            raise provider_errors.as_exception(
                refused.error, provider_errors.explain(refused.error, provider=integration.provider)
            ) from None
        account = await identify(ctx, integration, response, nonce=None)
        if account is None:
            raise BadInput(
                "The provider did not say which account signed in (no id_token): add the openid "
                f"and email scopes to integration {integration.name!r}."
            )
        return await store_grant(ctx, integration, account, GrantType.DEVICE_CODE, response)
