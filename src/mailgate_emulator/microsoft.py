"""The Microsoft identity platform v2.0 token endpoint: `POST /{tenant}/oauth2/v2.0/token`.

Checks run in the order Entra ID's answers imply: the tenant in the path, required parameters,
the client and its authentication, then the grant. A bad client therefore gets `invalid_client`
even when the code or refresh token is also bad — which `mailgate integration test` relies on.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator import device as device_flow
from mailgate_emulator import messages as msg
from mailgate_emulator.endpoint import Sleep, TokenRequest, serve_token_request
from mailgate_emulator.idtoken import id_token_claims
from mailgate_emulator.model import Account, Client, Grant, Tenant
from mailgate_emulator.pkce import verifier_matches
from mailgate_emulator.scopes import (
    GRAPH,
    join_scope,
    microsoft_key,
    microsoft_resource,
    microsoft_resources,
    resource_scopes,
    split_scope,
)
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.tenants import resolve_tenant

# The parameters each grant type must carry. Microsoft, unlike RFC 6749 §6, requires `scope` on
# a refresh: "AADSTS900144: The request body must contain the following parameter: 'scope'."
_REQUIRED = {
    "refresh_token": ("refresh_token", "scope"),
    "authorization_code": ("code",),
    "client_credentials": ("scope",),
    device_flow.DEVICE_GRANT: ("device_code",),
}


def token(state: EmulatorState, request: TokenRequest) -> dict[str, Any]:
    """Answer one token request, or raise the `MicrosoftError` Entra ID would answer."""
    segment = request.tenant or "common"
    tenant = resolve_tenant(state, segment)
    if request.credentials.client_id is None:
        raise msg.MISSING_PARAMETER(parameter="client_id")
    grant_type = request.param("grant_type")
    if grant_type is None:
        raise msg.MISSING_PARAMETER(parameter="grant_type")
    if grant_type not in _REQUIRED:
        raise msg.UNSUPPORTED_GRANT_TYPE(grant_type=grant_type)
    for name in _REQUIRED[grant_type]:
        if request.param(name) is None:
            raise msg.MISSING_PARAMETER(parameter=name)
    if grant_type == "client_credentials" and tenant is None:
        # App-only tokens are for one directory; "common" names none.
        raise msg.NO_TENANT()
    client = authenticate_client(state, request, tenant, segment, grant_type)
    if grant_type == "refresh_token":
        return _refresh(state, request, client)
    if grant_type == "authorization_code":
        return _authorization_code(state, request, client)
    if grant_type == device_flow.DEVICE_GRANT:
        return _device_code(state, request, client)
    assert tenant is not None
    return _client_credentials(state, request, client, tenant)


def authenticate_client(
    state: EmulatorState,
    request: TokenRequest,
    tenant: Tenant | None,
    segment: str,
    grant_type: str,
) -> Client:
    """The client, if it exists in the directory and proved itself; else `invalid_client`."""
    client_id = request.credentials.client_id or ""
    client = state.find_client("microsoft", client_id)
    if client is None or (tenant is not None and not state.client_known_in_tenant(client, tenant)):
        raise msg.APPLICATION_NOT_FOUND(client_id=client_id, tenant=segment)
    secret = request.credentials.client_secret
    if client.client_secret is None:
        if secret is not None:
            raise msg.PUBLIC_CLIENT_SENT_SECRET()
        if grant_type == "client_credentials":
            raise msg.SECRET_MISSING()  # app-only tokens need a credential
        return client
    if secret is None:
        # "Allow public client flows": the device code grant needs no secret.
        if grant_type == device_flow.DEVICE_GRANT and client.public_flows_allowed:
            return client
        raise msg.SECRET_MISSING()
    if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise msg.SECRET_INVALID(client_id=client_id)
    if client.secret_expires_at is not None and client.secret_expires_at <= state.now():
        raise msg.SECRET_EXPIRED(client_id=client_id)
    return client


def _refresh(state: EmulatorState, request: TokenRequest, client: Client) -> dict[str, Any]:
    refresh = state.refresh_tokens.get(request.param("refresh_token") or "")
    grant = state.grants.get(refresh.grant_id) if refresh else None
    if refresh is None or grant is None or grant.provider != "microsoft":
        raise msg.GRANT_MALFORMED()
    if grant.client_id != client.client_id or refresh.revoked or grant.revoked:
        raise msg.REFRESH_TOKEN_INVALID()
    account = state.account("microsoft", grant.address)
    if grant.authenticated_at < account.tokens_valid_from:
        raise msg.GRANT_REVOKED(
            issued=dotnet_datetime(grant.authenticated_at),
            valid_from=dotnet_datetime(account.tokens_valid_from),
        )
    lifetime = state.lifetimes.refresh_token_inactivity
    # "Refresh tokens replace themselves with a fresh token upon every use. The Microsoft identity
    # platform doesn't revoke old refresh tokens when used to fetch new access tokens." So each
    # token's inactivity counts from when *it* was issued, and an old one works until then.
    if state.now() >= refresh.issued_at + lifetime:
        raise msg.REFRESH_TOKEN_INACTIVE(
            issued=dotnet_datetime(refresh.issued_at), inactive=dotnet_timespan(lifetime)
        )
    scopes = _consented_scopes(split_scope(request.param("scope")), grant.scopes, client)
    refresh.last_used_at = state.now()
    return _delegated_answer(state, request, grant, account, scopes)


def _authorization_code(
    state: EmulatorState, request: TokenRequest, client: Client
) -> dict[str, Any]:
    code = state.codes.get(request.param("code") or "")
    if code is None or code.provider != "microsoft" or code.client_id != client.client_id:
        raise msg.CODE_INVALID()
    if code.redeemed:
        raise msg.CODE_REDEEMED()
    if state.now() >= code.expires_at:
        raise msg.CODE_EXPIRED()
    if code.redirect_uri is not None:
        # RFC 6749 §4.1.3: "ensure that the "redirect_uri" parameter is present if the
        # "redirect_uri" parameter was included in the initial authorization request [...] and
        # if included ensure that their values are identical."
        given = request.param("redirect_uri")
        if given is None:
            raise msg.MISSING_PARAMETER(parameter="redirect_uri")
        if given != code.redirect_uri:
            raise msg.CODE_REDIRECT_MISMATCH(given=given, expected=code.redirect_uri)
    if code.code_challenge is not None:
        verifier = request.param("code_verifier")
        if verifier is None or not verifier_matches(
            verifier, code.code_challenge, code.code_challenge_method
        ):
            raise msg.CODE_VERIFIER_MISMATCH()
    requested = split_scope(request.param("scope")) or code.scopes
    scopes = _consented_scopes(requested, code.scopes, client)
    grant = state.grant_from_code(code)
    account = state.account("microsoft", grant.address)
    return _delegated_answer(state, request, grant, account, scopes, nonce=code.nonce)


def _device_code(state: EmulatorState, request: TokenRequest, client: Client) -> dict[str, Any]:
    device = device_flow.poll(state, "microsoft", client, request.param("device_code") or "")
    scopes = _consented_scopes(device.scopes, device.scopes, client)
    grant = state.grant_from_device_code(device)
    account = state.account("microsoft", grant.address)
    return _delegated_answer(state, request, grant, account, scopes)


def _client_credentials(
    state: EmulatorState, request: TokenRequest, client: Client, tenant: Tenant
) -> dict[str, Any]:
    scopes = split_scope(request.param("scope"))
    invalid = [scope for scope in scopes if not scope.endswith("/.default")]
    if invalid:
        raise msg.CLIENT_CREDENTIALS_SCOPE(scope=invalid[0])
    if len(scopes) != 1:
        raise msg.SCOPE_INVALID(scope=join_scope(scopes))
    resource = microsoft_resource(scopes[0]) or GRAPH
    # App permissions (e.g. IMAP.AccessAsApp) granted admin consent become the token's `roles`.
    roles = tuple(
        sorted(
            scope.rsplit("/", 1)[-1]
            for scope in client.allowed_scopes or ()
            if microsoft_resource(scope) == resource and not scope.endswith("/.default")
        )
    )
    access = state.issue_access_token(
        "microsoft", client.client_id, None, scopes, audience=resource, roles=roles
    )
    lifetime = state.lifetimes.access_token
    # The v2.0 client-credentials answer has no scope and never a refresh token.
    return {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access.token,
    }


def _consented_scopes(
    requested: tuple[str, ...], consented: tuple[str, ...], client: Client
) -> tuple[str, ...]:
    """The requested scopes, if one resource and consented; `/.default` expands to the consent."""
    if len(microsoft_resources(requested)) > 1:
        raise msg.SCOPE_SEVERAL_RESOURCES(scope=join_scope(requested))
    consented_keys = {microsoft_key(scope) for scope in consented}
    scopes: list[str] = []
    for scope in requested:
        if scope.endswith("/.default"):
            resource = microsoft_resource(scope)
            scopes += [s for s in consented if microsoft_resource(s) == resource]
        elif microsoft_resource(scope) is None or microsoft_key(scope) in consented_keys:
            scopes.append(scope)
        else:
            # A refresh token only reaches scopes the user consented to.
            raise msg.CONSENT_REQUIRED(client_id=client.client_id)
    return tuple(dict.fromkeys(scopes))


def _delegated_answer(
    state: EmulatorState,
    request: TokenRequest,
    grant: Grant,
    account: Account,
    scopes: tuple[str, ...],
    *,
    nonce: str | None = None,
) -> dict[str, Any]:
    resources = microsoft_resources(scopes)
    granted = resource_scopes(scopes)
    access = state.issue_access_token(
        "microsoft",
        grant.client_id,
        grant.address,
        granted,
        grant_id=grant.grant_id,
        audience=next(iter(resources), GRAPH),
    )
    lifetime = state.lifetimes.access_token
    # The answer's `scope` lists the resource's scopes only: the documented example asks for
    # "openid offline_access https://graph.microsoft.com/mail.read" and gets back
    # "scope": "https://graph.microsoft.com/mail.read".
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": join_scope(granted),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access.token,
    }
    if grant.offline:
        body["refresh_token"] = state.issue_refresh_token(grant).token
    if "openid" in {scope.lower() for scope in scopes}:
        claims = id_token_claims(
            "microsoft",
            issuer=f"{request.base_url}/{account.tenant_id}/v2.0",
            client_id=grant.client_id,
            account=account,
            scopes=tuple(scope.lower() for scope in scopes),
            now=state.now(),
            nonce=nonce,
        )
        body["id_token"] = state.signing_keys.sign(claims)
    return body


def dotnet_datetime(at: float) -> str:
    """A time as Entra ID prints it: `2021-02-20T02:58:17.0350262Z` (seven fraction digits)."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def dotnet_timespan(seconds: int) -> str:
    """A duration as .NET prints a TimeSpan: `90.00:00:00` (days.hours:minutes:seconds)."""
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{clock}" if days else clock


def routes(state: EmulatorState, sleep: Sleep) -> list[BaseRoute]:
    """The token endpoint route."""

    async def token_endpoint(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        return await serve_token_request(state, request, "microsoft", token, sleep, tenant=tenant)

    return [Route("/{tenant}/oauth2/v2.0/token", token_endpoint, methods=["POST"])]
