"""Google's OAuth endpoints: `POST /token` (oauth2.googleapis.com) and `POST /revoke`.

Unlike Microsoft, a Google refresh does not rotate: the answer carries no `refresh_token` and the
client keeps using the one it has. A refresh token of an app whose consent screen is in "Testing"
status (external audience) dies 7 days after consent.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator import device as device_flow
from mailgate_emulator import messages as msg
from mailgate_emulator.endpoint import (
    RequestLog,
    Sleep,
    TokenRequest,
    apply_fault,
    read_form,
    serve_token_request,
)
from mailgate_emulator.errors import GoogleError
from mailgate_emulator.idtoken import id_token_claims
from mailgate_emulator.model import Client, Grant, RefreshToken
from mailgate_emulator.pkce import verifier_matches
from mailgate_emulator.responses import error_response, json_response
from mailgate_emulator.scopes import join_scope, split_scope
from mailgate_emulator.state import EmulatorState

# Google requires `redirect_uri` when exchanging a code ("Missing required parameter: redirect_uri").
_REQUIRED = {
    "refresh_token": ("refresh_token",),
    "authorization_code": ("code", "redirect_uri"),
    device_flow.DEVICE_GRANT: ("device_code",),
}


def token(state: EmulatorState, request: TokenRequest) -> dict[str, Any]:
    """Answer one token request, or raise the `GoogleError` Google would answer."""
    grant_type = request.param("grant_type") or ""
    if grant_type not in _REQUIRED:
        # Google has no client-credentials grant (service accounts use JWT bearer assertions).
        raise msg.G_UNSUPPORTED_GRANT_TYPE(grant_type=grant_type)
    for name in _REQUIRED[grant_type]:
        if request.param(name) is None:
            raise msg.G_MISSING_PARAMETER(parameter=name)
    client = authenticate_client(state, request)
    if grant_type == "refresh_token":
        return _refresh(state, request, client)
    if grant_type == device_flow.DEVICE_GRANT:
        return _device_code(state, request, client)
    return _authorization_code(state, request, client)


def authenticate_client(state: EmulatorState, request: TokenRequest) -> Client:
    """The client, if it exists and proved itself; else `invalid_client` / `invalid_request`."""
    client_id = request.credentials.client_id
    if client_id is None:
        raise msg.G_NO_CLIENT_ID()
    client = state.find_client("google", client_id)
    if client is None:
        raise msg.G_CLIENT_NOT_FOUND()
    if client.client_secret is None:
        return client  # installed apps on iOS/Android have no secret
    secret = request.credentials.client_secret
    if secret is None:
        raise msg.G_SECRET_MISSING()
    if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise msg.G_CLIENT_UNAUTHORIZED()
    if client.secret_expires_at is not None and client.secret_expires_at <= state.now():
        raise msg.G_CLIENT_UNAUTHORIZED()
    return client


def _refresh(state: EmulatorState, request: TokenRequest, client: Client) -> dict[str, Any]:
    refresh = state.refresh_tokens.get(request.param("refresh_token") or "")
    grant = state.grants.get(refresh.grant_id) if refresh else None
    if refresh is None or grant is None or grant.provider != "google":
        raise msg.G_BAD_REQUEST()
    if grant.client_id != client.client_id:
        raise msg.G_UNAUTHORIZED_CLIENT()
    if _refresh_token_dead(state, refresh, grant, client):
        raise msg.G_EXPIRED_OR_REVOKED()
    requested = split_scope(request.param("scope"))
    outside = [scope for scope in requested if scope not in grant.scopes]
    if outside:
        raise msg.G_INVALID_SCOPE(scopes=", ".join(outside))
    refresh.last_used_at = state.now()
    # No `refresh_token` in the answer: Google does not rotate refresh tokens.
    return _answer(state, request, grant, requested or grant.scopes)


def _refresh_token_dead(
    state: EmulatorState, refresh: RefreshToken, grant: Grant, client: Client
) -> bool:
    """Whether Google would say "Token has been expired or revoked."."""
    now = state.now()
    account = state.account("google", grant.address)
    return (
        refresh.revoked
        or grant.revoked
        # "The user changed passwords and the refresh token contains Gmail scopes."
        or grant.authenticated_at < account.tokens_valid_from
        # "A … project with an OAuth consent screen configured for an external user type and a
        # publishing status of 'Testing' is issued a refresh token expiring in 7 days".
        or (
            client.testing
            and now >= grant.authenticated_at + state.lifetimes.google_testing_refresh
        )
        # "The refresh token has not been used for six months."
        or now >= refresh.last_used_at + state.lifetimes.google_refresh_inactivity
    )


def _authorization_code(
    state: EmulatorState, request: TokenRequest, client: Client
) -> dict[str, Any]:
    code = state.codes.get(request.param("code") or "")
    if code is None or code.provider != "google":
        raise msg.G_MALFORMED_CODE()
    if code.client_id != client.client_id:
        raise msg.G_UNAUTHORIZED_CLIENT()
    if code.redeemed or state.now() >= code.expires_at:
        raise msg.G_BAD_REQUEST()
    if code.redirect_uri is not None and request.param("redirect_uri") != code.redirect_uri:
        raise msg.G_REDIRECT_URI_MISMATCH()
    if code.code_challenge is not None:
        verifier = request.param("code_verifier")
        if verifier is None:
            raise msg.G_MISSING_VERIFIER()
        if not verifier_matches(verifier, code.code_challenge, code.code_challenge_method):
            raise msg.G_INVALID_VERIFIER()
    grant = state.grant_from_code(code)
    body = _answer(state, request, grant, grant.scopes, nonce=code.nonce)
    if grant.offline:
        body["refresh_token"] = state.issue_refresh_token(grant).token
    return body


def _device_code(state: EmulatorState, request: TokenRequest, client: Client) -> dict[str, Any]:
    device = device_flow.poll(state, "google", client, request.param("device_code") or "")
    grant = state.grant_from_device_code(device)
    body = _answer(state, request, grant, grant.scopes)
    # "Note that refresh tokens are always returned for devices."
    body["refresh_token"] = state.issue_refresh_token(grant).token
    return body


def _answer(
    state: EmulatorState,
    request: TokenRequest,
    grant: Grant,
    scopes: tuple[str, ...],
    *,
    nonce: str | None = None,
) -> dict[str, Any]:
    access = state.issue_access_token(
        "google", grant.client_id, grant.address, scopes, grant_id=grant.grant_id
    )
    body: dict[str, Any] = {
        "access_token": access.token,
        "expires_in": state.lifetimes.access_token,
        "scope": join_scope(scopes),
        "token_type": "Bearer",
    }
    if "openid" in scopes:
        claims = id_token_claims(
            "google",
            issuer=request.base_url,
            client_id=grant.client_id,
            account=state.account("google", grant.address),
            scopes=scopes,
            now=state.now(),
            nonce=nonce,
        )
        body["id_token"] = state.signing_keys.sign(claims)
    return body


def revoke(state: EmulatorState, presented: str) -> None:
    """Revoke a token and its whole grant (RFC 7009); `GoogleError` if unknown or revoked.

    Google: "If the token is an access token and it has a corresponding refresh token, the refresh
    token will also be revoked."
    """
    with state.lock:
        refresh = state.refresh_tokens.get(presented)
        access = state.access_tokens.get(presented)
        grant_id = refresh.grant_id if refresh else access.grant_id if access else None
        grant = state.grants.get(grant_id) if grant_id else None
        if grant is not None and grant.provider == "google" and not grant.revoked:
            state.revoke_grant(grant.grant_id)
            return
        if (
            access is not None
            and access.provider == "google"
            and not access.revoked
            and grant is None
        ):
            access.revoked = True
            return
        raise msg.G_REVOKE_INVALID_TOKEN()


def routes(state: EmulatorState, sleep: Sleep) -> list[BaseRoute]:
    """The token and revocation routes."""

    async def token_endpoint(request: Request) -> Response:
        return await serve_token_request(state, request, "google", token, sleep)

    async def revoke_endpoint(request: Request) -> Response:
        log = RequestLog(state, request, "google", "revoke")
        faulted = await apply_fault(log, sleep, token_endpoint=False)
        if faulted is not None:
            return faulted
        form = await read_form(request, with_query=True)
        try:
            revoke(state, form.get("token") or "")
        except GoogleError as err:
            log(err.status, error=err.error)
            return error_response(err, state.now())
        log(200)
        # "If the revocation is successfully processed, then the HTTP status code of the
        # response is 200."
        return json_response({})

    return [
        Route("/token", token_endpoint, methods=["POST"]),
        Route("/revoke", revoke_endpoint, methods=["POST", "GET"]),
    ]
