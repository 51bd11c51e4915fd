"""The device authorization grant (RFC 8628), as Microsoft and Google run it.

`POST /{tenant}/oauth2/v2.0/devicecode` (Microsoft) and `POST /device/code` (Google) hand out a
device code and a user code; the person enters the user code at `/devicelogin` or `/device`
(`browser.py`); meanwhile the device polls the token endpoint with
`grant_type=urn:ietf:params:oauth:grant-type:device_code`, where `poll` decides the answer.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator import messages as msg
from mailgate_emulator.endpoint import RequestLog, Sleep, apply_fault, read_form
from mailgate_emulator.errors import EmulatedError, MicrosoftError
from mailgate_emulator.model import Client, DeviceAuthorization, Provider
from mailgate_emulator.responses import error_response, json_response
from mailgate_emulator.scopes import OIDC_SCOPES, join_scope, microsoft_resources, split_scope
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.tenants import resolve_tenant
from mailgate_emulator.urls import emulator_base

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# Google: "The OAuth 2.0 flow for devices is supported only for the following scopes" — so not
# for https://mail.google.com/ (brockamer/findajob#144: "Gmail scopes rejected by Google").
GOOGLE_DEVICE_SCOPES = frozenset(
    {
        "email",
        "openid",
        "profile",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
        "https://www.googleapis.com/auth/drive.appdata",
        "https://www.googleapis.com/auth/drive.file",
        "https://www.googleapis.com/auth/youtube",
        "https://www.googleapis.com/auth/youtube.readonly",
    }
)

# RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent
# requests."
SLOW_DOWN_STEP = 5


def microsoft_authorization(
    state: EmulatorState, segment: str, form: dict[str, str], base_url: str
) -> dict[str, Any]:
    """The `/devicecode` answer, or the `MicrosoftError` Entra ID would give."""
    resolve_tenant(state, segment)
    client_id = form.get("client_id") or None
    if client_id is None:
        raise msg.MISSING_PARAMETER(parameter="client_id")
    if state.find_client("microsoft", client_id) is None:
        raise msg.APPLICATION_NOT_FOUND(client_id=client_id, tenant=segment)
    scopes = split_scope(form.get("scope"))
    if not scopes:
        raise msg.MISSING_PARAMETER(parameter="scope")
    if len(microsoft_resources(scopes)) > 1:
        raise msg.SCOPE_SEVERAL_RESOURCES(scope=join_scope(scopes))
    _check_configured(state.require_client("microsoft", client_id), scopes, microsoft=True)
    device = state.create_device_authorization("microsoft", client_id, scopes, segment)
    uri = f"{base_url}/devicelogin"
    return {
        "user_code": device.user_code,
        "device_code": device.device_code,
        "verification_uri": uri,
        "expires_in": int(device.expires_at - device.issued_at),
        "interval": device.interval,
        # Azure/azure-sdk-for-python#32375: "To sign in, use a web browser to open the page
        # https://microsoft.com/devicelogin and enter the code BPPVYQZMA to authenticate."
        "message": (
            f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{device.user_code} to authenticate."
        ),
    }


def google_authorization(
    state: EmulatorState, form: dict[str, str], base_url: str
) -> dict[str, Any]:
    """The `/device/code` answer, or the `GoogleError` Google would give."""
    client_id = form.get("client_id") or None
    if client_id is None:
        raise msg.G_MISSING_PARAMETER(parameter="client_id")
    client = state.find_client("google", client_id)
    if client is None:
        raise msg.G_CLIENT_NOT_FOUND()
    scopes = split_scope(form.get("scope"))
    if not scopes:
        raise msg.G_MISSING_PARAMETER(parameter="scope")
    for scope in scopes:
        if scope not in GOOGLE_DEVICE_SCOPES:
            raise msg.G_DEVICE_SCOPE(scope=scope)
    _check_configured(client, scopes, microsoft=False)
    device = state.create_device_authorization("google", client_id, scopes)
    # Google names it `verification_url`, not RFC 8628's `verification_uri`.
    return {
        "device_code": device.device_code,
        "user_code": device.user_code,
        "verification_url": f"{base_url}/device",
        "expires_in": int(device.expires_at - device.issued_at),
        "interval": device.interval,
    }


def _check_configured(client: Client, scopes: tuple[str, ...], *, microsoft: bool) -> None:
    if client.allowed_scopes is None:
        return
    refused = [s for s in scopes if s not in client.allowed_scopes and s.lower() not in OIDC_SCOPES]
    if refused:
        if microsoft:
            raise msg.SCOPE_INVALID(scope=join_scope(refused))
        raise msg.G_INVALID_SCOPE(scopes=", ".join(refused))


def poll(
    state: EmulatorState, provider: Provider, client: Client, device_code: str
) -> DeviceAuthorization:
    """The approved device authorization this poll may redeem, or the error to answer.

    Order: unknown code, expired (whatever the user decided), already redeemed, polled too fast,
    then the user's decision.
    """
    microsoft = provider == "microsoft"
    device = state.device_authorizations.get(device_code)
    if device is None or device.provider != provider or device.client_id != client.client_id:
        raise msg.DEVICE_CODE_UNKNOWN() if microsoft else msg.G_BAD_REQUEST()
    now = state.now()
    if now >= device.expires_at:
        # RFC 8628 §3.5 `expired_token`: "The "device_code" has expired".
        raise msg.DEVICE_EXPIRED() if microsoft else msg.G_DEVICE_EXPIRED()
    if device.status == "redeemed":
        raise msg.DEVICE_CODE_REDEEMED() if microsoft else msg.G_BAD_REQUEST()
    polled_before = device.last_polled_at
    device.last_polled_at = now
    if polled_before is not None and now - polled_before < device.interval:
        device.interval += SLOW_DOWN_STEP
        raise msg.DEVICE_SLOW_DOWN() if microsoft else msg.G_DEVICE_SLOW_DOWN()
    if device.status == "pending":
        raise msg.DEVICE_PENDING() if microsoft else msg.G_DEVICE_PENDING()
    if device.status == "denied":
        raise msg.DEVICE_DECLINED() if microsoft else msg.G_DEVICE_DENIED()
    return device


def routes(state: EmulatorState, sleep: Sleep) -> list[BaseRoute]:
    """The two device authorization endpoints."""

    async def serve(request: Request, provider: Provider, segment: str | None) -> Response:
        form = await read_form(request)
        log = RequestLog(
            state,
            request,
            provider,
            "devicecode",
            tenant=segment,
            client_id=form.get("client_id") or None,
            scope=form.get("scope"),
        )
        faulted = await apply_fault(log, sleep, token_endpoint=False)
        if faulted is not None:
            return faulted
        base_url = emulator_base(request)
        try:
            with state.lock:
                if segment is not None:
                    body = microsoft_authorization(state, segment, form, base_url)
                else:
                    body = google_authorization(state, form, base_url)
        except EmulatedError as err:
            code = err.code if isinstance(err, MicrosoftError) else None
            log(err.status, error=err.error, error_code=code)
            return error_response(err, state.now(), request.headers.get("client-request-id"))
        log(200)
        return json_response(body)

    async def microsoft_endpoint(request: Request) -> Response:
        return await serve(request, "microsoft", request.path_params["tenant"])

    async def google_endpoint(request: Request) -> Response:
        return await serve(request, "google", None)

    return [
        Route("/{tenant}/oauth2/v2.0/devicecode", microsoft_endpoint, methods=["POST"]),
        Route("/device/code", google_endpoint, methods=["POST"]),
    ]
