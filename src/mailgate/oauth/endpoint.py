"""The token endpoint, behind one typed function (authlib does the RFC 6749 request).

`request_token` sends one token request — any grant type, with the integration's client
authentication — and returns a `TokenResponse` or raises:

- `TokenRequestRefused` (the provider answered with an RFC 6749 §5.2 error) carrying a
  `ProviderError`;
- `Transient` for network errors, timeouts and 5xx answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from mailgate.errors import OperationFailed, Transient
from mailgate.http import DEFAULT_TIMEOUT, USER_AGENT, tls_context
from mailgate.oauth.errors import ProviderError
from mailgate.providers import describe_http_error


@dataclass(frozen=True)
class ClientConfig:
    """What a token request needs from an integration; the secret stays in memory only."""

    provider: str
    client_id: str
    token_endpoint: str
    token_auth: str
    client_secret: str | None = field(default=None, repr=False)

    @property
    def auth_method(self) -> str:
        # A public client (device flow, no secret) authenticates with its client_id alone.
        return self.token_auth if self.client_secret else "none"


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1). Tokens are hidden from repr."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None
    refresh_token: str | None = field(default=None, repr=False)
    scope: tuple[str, ...] = ()
    id_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenResponse:
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise Transient("The token endpoint's answer had no access_token.")
        expires_in = data.get("expires_in")
        try:
            lifetime = int(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
            lifetime = None
        scope = data.get("scope")
        return cls(
            access_token=access_token,
            token_type=str(data.get("token_type") or "Bearer"),
            expires_in=lifetime,
            refresh_token=data.get("refresh_token") or None,
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
            id_token=data.get("id_token") or None,
        )


class TokenRequestRefused(OperationFailed):
    """The token endpoint answered with an OAuth 2.0 error; its caller says what it means
    (`errors.disposition`: re-authorize, fix the client, or retry)."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.summary)
        self.error = error


async def request_token(
    client: ClientConfig, grant_type: str, *, timeout: float = DEFAULT_TIMEOUT, **params: str
) -> TokenResponse:
    """POST one token request with the client's authentication."""
    oauth = AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        verify=tls_context(),
        trust_env=True,
        timeout=httpx2.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
    )
    statuses: list[int] = []

    def remember_status(response: httpx2.Response) -> httpx2.Response:
        statuses.append(response.status_code)
        return response

    oauth.register_compliance_hook("access_token_response", remember_status)
    try:
        async with oauth:
            token = await oauth.fetch_token(client.token_endpoint, grant_type=grant_type, **params)
    except OAuthError as exc:
        raise TokenRequestRefused(
            ProviderError(
                error=str(exc.error or "invalid_request"),
                description=str(exc.description or ""),
                http_status=statuses[-1] if statuses else 400,
                endpoint=client.token_endpoint,
            )
        ) from None
    except httpx2.HTTPStatusError as exc:
        status = exc.response.status_code
        # A 5xx is the provider's trouble (Microsoft's edge answers 503 temporarily_unavailable,
        # AADSTS90033), never the grant's: say so, so that nobody re-authorizes for nothing.
        answered = f"is unavailable (HTTP {status})" if status >= 500 else f"answered HTTP {status}"
        raise Transient(
            f"The token endpoint {client.token_endpoint} {answered}; mailgate will retry."
        ) from None
    except httpx2.HTTPError as exc:
        raise Transient(
            f"The token endpoint {client.token_endpoint} could not be reached "
            f"({describe_http_error(exc)}); mailgate will retry."
        ) from None
    except ValueError:
        raise Transient(
            f"The token endpoint {client.token_endpoint} did not answer with JSON; "
            "mailgate will retry."
        ) from None
    return TokenResponse.from_json(dict(token))
