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
    # Microsoft device code flow: "the user has 15 minutes to sign in. This is the default value
    # for `expires_in`." learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code
    microsoft_device_code: int = 900
    # Google: `"expires_in": 1800` in the device flow's sample response.
    # developers.google.com/identity/protocols/oauth2/limited-input-device
    google_device_code: int = 1800
    # Both providers answer `"interval": 5`; tests shrink it.
    device_poll_interval: int = 5
    # How long a sign-in page stays usable (the emulator's choice; Entra's is not documented).
    sign_in_flow: int = 3600


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
    redirect_uris: tuple[str, ...] = ()  # compared exactly, as both providers do
    # Microsoft: the app's permissions need an administrator's consent in the user's directory.
    admin_consent_required: bool = False
    # Microsoft "Allow public client flows": the device code grant without a secret.
    allow_public_client_flows: bool = False

    @property
    def is_public(self) -> bool:
        """A public client (no secret) may use the token endpoint with its client_id alone."""
        return self.client_secret is None

    @property
    def public_flows_allowed(self) -> bool:
        """Whether the device code grant may be redeemed without a client secret."""
        return self.is_public or self.allow_public_client_flows


@dataclass
class Account:
    """A user who can consent; `tokens_valid_from` moves forward on password change or revoke."""

    provider: Provider
    address: str
    subject: str  # Microsoft `oid`, Google `sub`
    tenant_id: str | None = None
    tokens_valid_from: float = 0.0
    password: str | None = field(default=None, repr=False)  # None: cannot sign in interactively
    display_name: str | None = None

    @property
    def name(self) -> str:
        """The display name, or the address's local part."""
        return self.display_name or self.address.split("@", 1)[0]


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
    redirect_uri: str | None = None  # the token request must repeat it (RFC 6749 §4.1.3)
    nonce: str | None = None  # copied into the ID token (OpenID Connect Core §3.1.3.6)


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


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request: what the sign-in and consent pages work towards."""

    provider: Provider
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str = "plain"
    prompt: frozenset[str] = frozenset()
    login_hint: str | None = None
    tenant: str = "common"  # Microsoft: the `{tenant}` path segment
    access_type: str = "online"  # Google: `offline` asks for a refresh token
    include_granted_scopes: bool = False  # Google: add the scopes granted before


DeviceStatus = Literal["pending", "approved", "denied", "redeemed"]


@dataclass
class DeviceAuthorization:
    """A device authorization (RFC 8628 §3.2) and what the user decided about it."""

    device_code: str = field(repr=False)
    user_code: str
    provider: Provider
    client_id: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    interval: int  # grows by 5 s on each `slow_down` (RFC 8628 §3.5)
    tenant: str = "common"
    status: DeviceStatus = "pending"
    address: str | None = None
    last_polled_at: float | None = None


@dataclass
class SignInFlow:
    """A browser sign-in in progress, keyed by the `flow` hidden field of its pages.

    It ends in an authorization code (`authorization`) or a device code's approval (`user_code`).
    """

    flow_id: str
    provider: Provider
    client_id: str
    scopes: tuple[str, ...]
    tenant: str
    created_at: float
    authorization: AuthorizationRequest | None = None
    user_code: str | None = None
    login_hint: str | None = None
    address: str | None = None  # set once the user has signed in
    session_state: str | None = None  # the browser session's, once signed in


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser, remembered by a cookie so the next sign-in can skip the password."""

    token: str = field(repr=False)
    provider: Provider
    address: str
    authenticated_at: float
    session_state: str  # Microsoft echoes it as `session_state` on the redirect


Endpoint = Literal["token", "revoke", "introspect", "authorize", "devicecode"]


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
