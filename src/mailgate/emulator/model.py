"""What the emulator remembers: clients, tenants, accounts, grants, tokens, faults, requests.

Plain dataclasses with no behaviour beyond small predicates; `EmulatorState` owns and mutates them.
Times are seconds since the epoch on the emulator's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Provider = Literal["microsoft", "google"]
PROVIDERS: tuple[Provider, ...] = ("microsoft", "google")

DAY = 86_400


@dataclass
class Lifetimes:
    """How long things live, in seconds. Defaults are the providers' documented values."""

    # Microsoft: "expires_in ... 3599" in every v2.0 token response example.
    access_token: int = 3599
    # Microsoft: "refresh tokens have a lifetime of 90 days" (the inactivity window; each refresh
    # returns a new one). learn.microsoft.com/entra/identity-platform/refresh-tokens
    refresh_token_inactivity: int = 90 * DAY
    # Google: "A Google Cloud Platform project with an OAuth consent screen configured for an
    # external user type and a publishing status of 'Testing' is issued a refresh token expiring
    # in 7 days". developers.google.com/identity/protocols/oauth2#expiration
    google_testing_refresh: int = 7 * DAY
    # Google: a refresh token stops working when it "has not been used for six months".
    google_refresh_inactivity: int = 182 * DAY
    # Microsoft: "Authorization codes are short lived, typically expiring after about 10 minutes."
    authorization_code: int = 600


@dataclass(frozen=True)
class Tenant:
    """A Microsoft Entra directory."""

    tenant_id: str
    domain: str | None = None


@dataclass
class Client:
    """An app registration (Microsoft) or OAuth client (Google)."""

    provider: Provider
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    secret_expires_at: float | None = None
    tenant_id: str | None = None  # Microsoft: the home tenant of the app registration
    testing: bool = False  # Google: consent screen in "Testing" status, external audience
    app_username: str | None = None  # the mailbox app-only tokens act for, in introspection
    allowed_scopes: frozenset[str] | None = None  # None: any scope may be consented

    @property
    def is_public(self) -> bool:
        """A public client (no secret) may use the token endpoint with its client_id alone."""
        return self.client_secret is None


@dataclass
class Account:
    """A user who can consent; `tokens_valid_from` moves forward on password change or revoke."""

    provider: Provider
    address: str
    subject: str  # Microsoft `oid`, Google `sub`
    tenant_id: str | None = None
    tokens_valid_from: float = 0.0


@dataclass
class Grant:
    """One completed consent: an account allowed a client some scopes. Refresh tokens chain off it."""

    grant_id: str
    provider: Provider
    client_id: str
    address: str
    scopes: tuple[str, ...]
    authenticated_at: float  # when the user signed in; compared with tokens_valid_from
    offline: bool  # whether refresh tokens are issued at all
    revoked: bool = False


@dataclass
class RefreshToken:
    """A refresh token. `token_id` is an opaque handle that is safe to log."""

    token: str = field(repr=False)
    token_id: str
    grant_id: str
    issued_at: float
    last_used_at: float
    revoked: bool = False


@dataclass
class AccessToken:
    """An access token; `address` is None for app-only (client credentials) tokens."""

    token: str = field(repr=False)
    token_id: str
    provider: Provider
    client_id: str
    address: str | None
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    grant_id: str | None = None
    audience: str | None = None
    roles: tuple[str, ...] = ()
    revoked: bool = False


@dataclass
class AuthorizationCode:
    """An authorization code, as the consent page would have issued it."""

    code: str = field(repr=False)
    provider: Provider
    client_id: str
    address: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    offline: bool
    code_challenge: str | None = None
    code_challenge_method: str = "S256"
    redeemed: bool = False


@dataclass(frozen=True)
class ResourceServer:
    """Credentials a resource server (e.g. Dovecot) presents to the introspection endpoint."""

    username: str
    password: str = field(repr=False)


@dataclass
class Fault:
    """An injected failure for the next `count` matching requests (None: until cleared).

    With `path` unset it applies to token-endpoint requests; with `path` set, to any emulated
    request whose path is exactly that. `status` None means "only delay, then answer normally".
    """

    status: int | None = 503
    count: int | None = 1
    delay: float = 0.0
    provider: Provider | None = None
    path: str | None = None
    body: str | None = None
    content_type: str | None = None
    retry_after: int | None = None


Endpoint = Literal["token", "revoke", "introspect"]


@dataclass(frozen=True)
class RequestRecord:
    """One logged request. Never holds a token: `refresh_token_id` is an opaque handle."""

    at: float
    provider: Provider | None
    endpoint: Endpoint
    path: str
    status: int
    tenant: str | None = None
    grant_type: str | None = None
    client_id: str | None = None
    scope: str | None = None
    refresh_token_id: str | None = None
    auth_method: str | None = None
    error: str | None = None
    error_code: int | None = None
    fault: bool = False
