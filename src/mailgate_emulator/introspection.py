"""RFC 7662 token introspection, as a mail server (Dovecot's `oauth2` passdb) uses it.

Dovecot posts `token=…&client_id=…&client_secret=…` with the resource server's own credentials
in HTTP Basic (from `introspection_url = http://USER:PASS@host/introspect`), then logs the user
in as the answer's `username_attribute` (default `email`). Only live access tokens are active:
refresh tokens, expired, revoked and unknown tokens all answer `{"active": false}` (§2.2).
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator.credentials import parse_basic_credentials
from mailgate_emulator.endpoint import RequestLog, Sleep, apply_fault, read_form
from mailgate_emulator.model import AccessToken
from mailgate_emulator.responses import json_response
from mailgate_emulator.state import EmulatorState


def is_active(state: EmulatorState, access: AccessToken) -> bool:
    """Whether an access token would still be accepted by the resource it is for."""
    with state.lock:
        grant = state.grants.get(access.grant_id) if access.grant_id else None
        return (
            not access.revoked and not (grant and grant.revoked) and state.now() < access.expires_at
        )


def introspect(state: EmulatorState, presented: str) -> dict[str, Any]:
    """The introspection answer for a token (RFC 7662 §2.2)."""
    with state.lock:
        access = state.access_tokens.get(presented)
        if access is None or not is_active(state, access):
            return {"active": False}
        client = state.find_client(access.provider, access.client_id)
        # App-only tokens act for no user; a client may name the mailbox it is meant for.
        username = access.address or (client.app_username if client else None)
        answer: dict[str, Any] = {
            "active": True,
            "scope": " ".join(access.scopes),
            "client_id": access.client_id,
            "token_type": "Bearer",
            "exp": int(access.expires_at),
            "iat": int(access.issued_at),
        }
        if username:
            answer["username"] = username
            answer["email"] = username
        if access.address:
            answer["sub"] = state.account(access.provider, access.address).subject
        if access.audience:
            answer["aud"] = access.audience
        if access.roles:
            answer["roles"] = list(access.roles)
        return answer


def authorized(state: EmulatorState, authorization: str | None) -> bool:
    """Whether the HTTP Basic credentials are a registered resource server's."""
    credentials = parse_basic_credentials(authorization)
    if credentials is None:
        return False
    with state.lock:
        server = state.resource_servers.get(credentials[0])
    return server is not None and hmac.compare_digest(
        server.password.encode(), credentials[1].encode()
    )


def routes(state: EmulatorState, sleep: Sleep) -> list[BaseRoute]:
    """The introspection route (POST, and GET with `?token=` for Dovecot's `get` mode)."""

    async def introspection_endpoint(request: Request) -> Response:
        form = await read_form(request, with_query=True)
        log = RequestLog(
            state, request, None, "introspect", client_id=form.get("client_id") or None
        )
        faulted = await apply_fault(log, sleep, token_endpoint=False)
        if faulted is not None:
            return faulted
        if not authorized(state, request.headers.get("authorization")):
            # RFC 7662 §2.3: invalid resource-server credentials get RFC 6749 §5.2's 401.
            log(401, error="invalid_client")
            challenge = {"WWW-Authenticate": 'Basic realm="introspection"'}
            return json_response({"error": "invalid_client"}, 401, challenge)
        token = form.get("token")
        if not token:
            log(400, error="invalid_request")  # §2.1: `token` is REQUIRED
            return json_response({"error": "invalid_request"}, 400)
        log(200)
        return json_response(introspect(state, token))

    return [Route("/introspect", introspection_endpoint, methods=["POST", "GET"])]
