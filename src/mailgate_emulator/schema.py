"""The JSON the control API and `--config` files accept, and how each applies to the state.

Each model validates one operation's input and applies it with the matching `EmulatorState`
method, so the HTTP control API, the config file and in-process tests share one behaviour.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailgate_emulator import authorize, signin
from mailgate_emulator.model import Fault, Lifetimes, Provider
from mailgate_emulator.scopes import split_scope
from mailgate_emulator.state import UNSET, EmulatorState


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _scopes(value: Any) -> Any:
    # Scopes may come as a list or as a space-separated `scope` string.
    return list(split_scope(value)) if isinstance(value, str) else value


class TenantIn(_Strict):
    """A Microsoft directory."""

    tenant_id: str
    domain: str | None = None

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Register it; returns its JSON view."""
        tenant = state.register_tenant(self.tenant_id, self.domain)
        return {"tenant_id": tenant.tenant_id, "domain": tenant.domain}


class ClientIn(_Strict):
    """An app registration. `secret_expires_in` is relative to the emulator's clock."""

    provider: Provider
    client_id: str
    client_secret: str | None = None
    secret_expires_at: float | None = None
    secret_expires_in: float | None = None
    tenant_id: str | None = None
    tenant_domain: str | None = None
    testing: bool = False
    app_username: str | None = None
    allowed_scopes: list[str] | None = None
    redirect_uris: list[str] = []
    admin_consent_required: bool = False
    allow_public_client_flows: bool = False

    _split = field_validator("allowed_scopes", mode="before")(_scopes)

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Register it; returns its JSON view."""
        expires_at = self.secret_expires_at
        if self.secret_expires_in is not None:
            expires_at = state.now() + self.secret_expires_in
        client = state.register_client(
            self.provider,
            self.client_id,
            self.client_secret,
            secret_expires_at=expires_at,
            tenant_id=self.tenant_id,
            tenant_domain=self.tenant_domain,
            testing=self.testing,
            app_username=self.app_username,
            allowed_scopes=self.allowed_scopes,
            redirect_uris=self.redirect_uris,
            admin_consent_required=self.admin_consent_required,
            allow_public_client_flows=self.allow_public_client_flows,
        )
        return client_view(state, client.provider, client.client_id)


class ClientUpdate(_Strict):
    """Changes to a registered client; fields left out stay as they are."""

    client_secret: str | None = None
    secret_expires_at: float | None = None
    secret_expires_in: float | None = None
    testing: bool | None = None
    app_username: str | None = None
    redirect_uris: list[str] | None = None
    admin_consent_required: bool | None = None

    def apply(self, state: EmulatorState, provider: Provider, client_id: str) -> dict[str, Any]:
        """Update the client; returns its JSON view."""
        given = self.model_fields_set
        expires_at: float | None = self.secret_expires_at
        if self.secret_expires_in is not None:
            expires_at = state.now() + self.secret_expires_in
        expiry_given = bool({"secret_expires_at", "secret_expires_in"} & given)
        state.update_client(
            provider,
            client_id,
            client_secret=self.client_secret if "client_secret" in given else UNSET,
            secret_expires_at=expires_at if expiry_given else UNSET,
            testing=self.testing if self.testing is not None else UNSET,
            app_username=self.app_username if "app_username" in given else UNSET,
            redirect_uris=self.redirect_uris if self.redirect_uris is not None else UNSET,
            admin_consent_required=(
                self.admin_consent_required if self.admin_consent_required is not None else UNSET
            ),
        )
        return client_view(state, provider, client_id)


def client_view(state: EmulatorState, provider: Provider, client_id: str) -> dict[str, Any]:
    """A client as JSON, without its secret."""
    client = state.require_client(provider, client_id)
    return {
        "provider": client.provider,
        "client_id": client.client_id,
        "public": client.is_public,
        "secret_expires_at": client.secret_expires_at,
        "tenant_id": client.tenant_id,
        "testing": client.testing,
        "app_username": client.app_username,
        "allowed_scopes": sorted(client.allowed_scopes)
        if client.allowed_scopes is not None
        else None,
        "redirect_uris": list(client.redirect_uris),
        "admin_consent_required": client.admin_consent_required,
        "allow_public_client_flows": client.allow_public_client_flows,
    }


class AccountIn(_Strict):
    """A test user who signs in on the emulated pages (Microsoft: in `tenant_id`)."""

    provider: Provider
    address: str
    password: str
    tenant_id: str | None = None
    display_name: str | None = None

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Register the account; returns its JSON view (without the password)."""
        account = state.register_account(
            self.provider,
            self.address,
            self.password,
            tenant_id=self.tenant_id,
            display_name=self.display_name,
        )
        return {
            "provider": account.provider,
            "address": account.address,
            "subject": account.subject,
            "tenant_id": account.tenant_id,
            "display_name": account.name,
        }


class AdminConsentIn(_Strict):
    """A Microsoft administrator's consent for the app in a directory (all scopes if none)."""

    client_id: str
    tenant_id: str
    scopes: list[str] | None = None

    _split = field_validator("scopes", mode="before")(_scopes)

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Record the consent."""
        state.grant_admin_consent(self.client_id, self.tenant_id, self.scopes)
        return {"client_id": self.client_id, "tenant_id": self.tenant_id, "scopes": self.scopes}


class DeviceApproval(_Strict):
    """What the device verification page does when `account` accepts (or denies)."""

    user_code: str
    account: str
    deny: bool = False

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Approve or deny the device code."""
        device = state.approve_device_code(self.user_code, self.account, deny=self.deny)
        return {"user_code": device.user_code, "status": device.status}


class AuthorizationCompletion(_Strict):
    """Sign `account` in for an authorization URL and choose on the consent page, without HTML."""

    url: str
    account: str
    decision: Literal["accept", "cancel"] = "accept"

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Where the browser would be redirected (a code, or an error), as `location`."""
        try:
            with state.lock:
                request = authorize.parse_url(state, self.url)
                location = signin.complete_authorization(
                    state, request, self.account, accept=self.decision == "accept"
                )
        except authorize.PageError as err:
            raise ValueError(f"{err.page.heading}: {err.page.message}") from err
        except authorize.RedirectError as err:
            location = signin.error_redirect(state, err).location
        return {"location": location}


class ResourceServerIn(_Strict):
    """Credentials for the introspection endpoint."""

    username: str
    password: str

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Register them."""
        state.register_resource_server(self.username, self.password)
        return {"username": self.username}


class GrantIn(_Strict):
    """A completed consent."""

    provider: Provider
    client_id: str
    account: str
    scopes: list[str]
    offline: bool | None = None
    with_access_token: bool = False
    tenant_id: str | None = None
    refresh_token: str | None = None

    _split = field_validator("scopes", mode="before")(_scopes)

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Make the grant; returns its tokens."""
        issued = state.create_grant(
            self.provider,
            self.client_id,
            self.account,
            self.scopes,
            offline=self.offline,
            with_access_token=self.with_access_token,
            tenant_id=self.tenant_id,
            refresh_token=self.refresh_token,
        )
        return {
            "grant_id": issued.grant_id,
            "scope": issued.scope,
            "refresh_token": issued.refresh_token,
            "refresh_token_id": issued.refresh_token_id,
            "access_token": issued.access_token,
            "expires_in": issued.expires_in,
        }


class CodeIn(_Strict):
    """An authorization code, optionally bound to a PKCE challenge."""

    provider: Provider
    client_id: str
    account: str
    scopes: list[str]
    code_challenge: str | None = None
    code_challenge_method: str = Field(default="S256", pattern="^(S256|plain)$")
    offline: bool | None = None
    tenant_id: str | None = None

    _split = field_validator("scopes", mode="before")(_scopes)

    def apply(self, state: EmulatorState) -> dict[str, Any]:
        """Issue the code."""
        code = state.create_authorization_code(
            self.provider,
            self.client_id,
            self.account,
            self.scopes,
            code_challenge=self.code_challenge,
            code_challenge_method=self.code_challenge_method,
            offline=self.offline,
            tenant_id=self.tenant_id,
        )
        return {"code": code}


class AccountRevocation(_Strict):
    """Move an account's tokens-valid-from to now (password change, revoke sessions)."""

    provider: Provider
    account: str
    revoke_access_tokens: bool = False


class RefreshTokenRevocation(_Strict):
    """Revoke one refresh token."""

    refresh_token: str


class ClockAdvance(_Strict):
    """Move the emulator's clock forward."""

    seconds: float = Field(ge=0)


class LifetimesIn(_Strict):
    """New lifetimes in seconds; fields left out stay as they are."""

    access_token: int | None = Field(default=None, gt=0)
    refresh_token_inactivity: int | None = Field(default=None, gt=0)
    google_testing_refresh: int | None = Field(default=None, gt=0)
    google_refresh_inactivity: int | None = Field(default=None, gt=0)
    authorization_code: int | None = Field(default=None, gt=0)
    microsoft_device_code: int | None = Field(default=None, gt=0)
    google_device_code: int | None = Field(default=None, gt=0)
    device_poll_interval: int | None = Field(default=None, gt=0)
    sign_in_flow: int | None = Field(default=None, gt=0)

    def apply(self, state: EmulatorState) -> Lifetimes:
        """Set them; returns the full set."""
        return state.set_lifetimes(**self.model_dump(exclude_none=True))


class FaultIn(_Strict):
    """A failure for the next `count` matching requests (`count` null: until cleared)."""

    status: int | None = Field(default=503, ge=400, le=599)
    count: int | None = Field(default=1, ge=1)
    delay: float = Field(default=0.0, ge=0)
    provider: Provider | None = None
    path: str | None = None
    body: str | None = None
    content_type: str | None = None
    retry_after: int | None = None

    def apply(self, state: EmulatorState) -> Fault:
        """Add the fault."""
        return state.inject_fault(Fault(**self.model_dump()))


class EmulatorConfig(_Strict):
    """A `--config` file: registrations to load at start."""

    tenants: list[TenantIn] = []
    clients: list[ClientIn] = []
    accounts: list[AccountIn] = []
    admin_consents: list[AdminConsentIn] = []
    resource_servers: list[ResourceServerIn] = []
    grants: list[GrantIn] = []
    lifetimes: LifetimesIn | None = None

    def apply(self, state: EmulatorState) -> None:
        """Load everything into the state."""
        if self.lifetimes is not None:
            self.lifetimes.apply(state)
        for tenant in self.tenants:
            tenant.apply(state)
        for client in self.clients:
            client.apply(state)
        for account in self.accounts:
            account.apply(state)
        for consent in self.admin_consents:
            consent.apply(state)
        for server in self.resource_servers:
            server.apply(state)
        for grant in self.grants:
            grant.apply(state)
