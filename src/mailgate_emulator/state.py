"""`EmulatorState`: everything the emulated providers know, and the operations tests drive.

One object per emulator. The HTTP handlers and the control API call its methods; in-process tests
call the same methods directly. A re-entrant lock makes each method atomic, and the token
endpoints hold `state.lock` for a whole request, so a test thread may drive the state while the
server thread answers.
"""

from __future__ import annotations

import enum
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mailgate_emulator import tokens
from mailgate_emulator.clock import EmulatorClock
from mailgate_emulator.idtoken import SigningKeys
from mailgate_emulator.interactive import InteractiveState
from mailgate_emulator.model import (
    AccessToken,
    Account,
    AuthorizationCode,
    Client,
    DeviceAuthorization,
    Fault,
    Grant,
    Lifetimes,
    Provider,
    RefreshToken,
    RequestRecord,
    ResourceServer,
    Tenant,
)
from mailgate_emulator.scopes import OIDC_SCOPES, microsoft_key


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


@dataclass(frozen=True)
class IssuedGrant:
    """What a completed consent hands the client (tokens hidden from repr)."""

    grant_id: str
    scope: str
    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_id: str | None = None
    access_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None


class EmulatorState(InteractiveState):
    """The emulated providers' memory: registrations, grants, tokens, faults and request log.

    The sign-in side — passwords, consents, sessions, device codes — is `InteractiveState`'s.
    """

    def __init__(
        self, *, clock: EmulatorClock | None = None, lifetimes: Lifetimes | None = None
    ) -> None:
        self.clock = clock or EmulatorClock()
        self.lifetimes = lifetimes or Lifetimes()
        self.signing_keys = SigningKeys()
        self.lock = threading.RLock()
        # Bumped by reset(), so a request that outlives a reset can tell (see endpoint.RequestLog).
        self.generation = 0
        self._clear()

    def _clear(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.clients: dict[tuple[Provider, str], Client] = {}
        self.accounts: dict[tuple[Provider, str], Account] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.resource_servers: dict[str, ResourceServer] = {}
        self.faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        self._clear_interactive()

    def reset(self) -> None:
        """Forget everything and put the clock and lifetimes back to their defaults."""
        with self.lock:
            self.generation += 1
            self._clear()
            self.clock.reset()
            self.lifetimes = Lifetimes()

    # --- time ----------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's current time (seconds since the epoch)."""
        return self.clock.now()

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock forward; returns the new time."""
        return self.clock.advance(seconds)

    def set_lifetimes(self, **changes: int) -> Lifetimes:
        """Change some lifetimes (seconds), by `Lifetimes` field name; returns the new set."""
        known = {f.name for f in fields(Lifetimes)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown lifetimes: {', '.join(sorted(unknown))}")
        if any(value <= 0 for value in changes.values()):
            raise ValueError("lifetimes must be positive")
        with self.lock:
            self.lifetimes = replace(self.lifetimes, **changes)
            return self.lifetimes

    # --- registrations -------------------------------------------------------------------------

    def register_tenant(self, tenant_id: str, domain: str | None = None) -> Tenant:
        """Make a Microsoft directory known (clients and accounts register theirs implicitly)."""
        with self.lock:
            existing = self.tenants.get(tenant_id.lower())
            tenant = Tenant(tenant_id, domain or (existing.domain if existing else None))
            self.tenants[tenant_id.lower()] = tenant
            return tenant

    def find_tenant(self, identifier: str) -> Tenant | None:
        """The directory with this id or domain name (case-insensitive)."""
        key = identifier.lower()
        with self.lock:
            if key in self.tenants:
                return self.tenants[key]
            return next((t for t in self.tenants.values() if (t.domain or "").lower() == key), None)

    def register_client(
        self,
        provider: Provider,
        client_id: str,
        client_secret: str | None = None,
        *,
        secret_expires_at: float | None = None,
        tenant_id: str | None = None,
        tenant_domain: str | None = None,
        testing: bool = False,
        app_username: str | None = None,
        allowed_scopes: Iterable[str] | None = None,
        redirect_uris: Iterable[str] = (),
        admin_consent_required: bool = False,
        allow_public_client_flows: bool = False,
    ) -> Client:
        """Register an app. Without a secret it is a public client. Replaces an earlier one.

        `redirect_uris` are the only ones the authorization endpoint redirects to;
        `admin_consent_required` (Microsoft) makes sign-in fail until `grant_admin_consent`;
        `allow_public_client_flows` (Microsoft) lets a confidential app redeem device codes
        without its secret.
        """
        with self.lock:
            if provider == "microsoft":
                # Every app registration lives in a home directory.
                tenant_id = self.register_tenant(
                    tenant_id or str(uuid.uuid4()), tenant_domain
                ).tenant_id
            client = Client(
                provider=provider,
                client_id=client_id,
                client_secret=client_secret,
                secret_expires_at=secret_expires_at,
                tenant_id=tenant_id,
                testing=testing,
                app_username=app_username,
                allowed_scopes=frozenset(allowed_scopes) if allowed_scopes is not None else None,
                redirect_uris=tuple(redirect_uris),
                admin_consent_required=admin_consent_required,
                allow_public_client_flows=allow_public_client_flows,
            )
            self.clients[(provider, client_id)] = client
            return client

    def update_client(
        self,
        provider: Provider,
        client_id: str,
        *,
        client_secret: str | _Unset | None = UNSET,
        secret_expires_at: float | _Unset | None = UNSET,
        testing: bool | _Unset = UNSET,
        app_username: str | _Unset | None = UNSET,
        redirect_uris: Iterable[str] | _Unset = UNSET,
        admin_consent_required: bool | _Unset = UNSET,
    ) -> Client:
        """Change a registered client, e.g. give it a new secret (the old one stops working)."""
        changes: dict[str, Any] = {
            "client_secret": client_secret,
            "secret_expires_at": secret_expires_at,
            "testing": testing,
            "app_username": app_username,
            "redirect_uris": UNSET if isinstance(redirect_uris, _Unset) else tuple(redirect_uris),
            "admin_consent_required": admin_consent_required,
        }
        with self.lock:
            client = self.require_client(provider, client_id)
            for name, value in changes.items():
                if value is not UNSET:
                    setattr(client, name, value)
            return client

    def find_client(self, provider: Provider, client_id: str) -> Client | None:
        """The registered client, if any."""
        with self.lock:
            return self.clients.get((provider, client_id))

    def require_client(self, provider: Provider, client_id: str) -> Client:
        """The registered client; `KeyError` if there is none."""
        client = self.find_client(provider, client_id)
        if client is None:
            raise KeyError(f"no {provider} client {client_id!r} is registered")
        return client

    def client_known_in_tenant(self, client: Client, tenant: Tenant) -> bool:
        """Whether the app has a service principal in `tenant`: its home, or a consenting user's."""
        key = tenant.tenant_id.lower()
        with self.lock:
            if (client.tenant_id or "").lower() == key:
                return True
            return any(
                grant.client_id == client.client_id
                and (self.accounts[(grant.provider, grant.address.lower())].tenant_id or "").lower()
                == key
                for grant in self.grants.values()
                if grant.provider == client.provider
            )

    def register_resource_server(self, username: str, password: str) -> ResourceServer:
        """Allow a resource server to call the introspection endpoint with these credentials."""
        with self.lock:
            server = ResourceServer(username, password)
            self.resource_servers[username] = server
            return server

    # --- accounts and consent ------------------------------------------------------------------

    def ensure_account(
        self, provider: Provider, address: str, *, tenant_id: str | None = None
    ) -> Account:
        """The account with this address, created on first mention."""
        with self.lock:
            key = (provider, address.lower())
            account = self.accounts.get(key)
            if account is None:
                subject = str(uuid.uuid4()) if provider == "microsoft" else _google_subject()
                account = Account(provider, address, subject, tenant_id)
                self.accounts[key] = account
            if tenant_id and provider == "microsoft":
                account.tenant_id = self.register_tenant(tenant_id).tenant_id
            return account

    def account(self, provider: Provider, address: str) -> Account:
        """A known account; `KeyError` if there is none."""
        with self.lock:
            account = self.accounts.get((provider, address.lower()))
        if account is None:
            raise KeyError(f"no {provider} account {address!r} has consented")
        return account

    def create_grant(
        self,
        provider: Provider,
        client_id: str,
        address: str,
        scopes: Iterable[str],
        *,
        offline: bool | None = None,
        with_access_token: bool = False,
        tenant_id: str | None = None,
        refresh_token: str | None = None,
    ) -> IssuedGrant:
        """Record a completed consent and hand out its refresh token (and an access token).

        `offline` defaults to the provider's rule: Microsoft issues refresh tokens only when
        `offline_access` is granted; Google when the app asked for `access_type=offline`.
        `refresh_token` pins the token's value (for demo configurations); normally it is random.
        """
        with self.lock:
            if refresh_token is not None and refresh_token in self.refresh_tokens:
                raise ValueError("that refresh token is already issued")
            grant = self._new_grant(provider, client_id, address, tuple(scopes), offline, tenant_id)
            refresh = self.issue_refresh_token(grant, refresh_token) if grant.offline else None
            access = None
            if with_access_token:
                access = self.issue_access_token(
                    provider, client_id, address, grant.scopes, grant_id=grant.grant_id
                )
            return IssuedGrant(
                grant_id=grant.grant_id,
                scope=" ".join(grant.scopes),
                refresh_token=refresh.token if refresh else None,
                refresh_token_id=refresh.token_id if refresh else None,
                access_token=access.token if access else None,
                expires_in=self.lifetimes.access_token if access else None,
            )

    def _new_grant(
        self,
        provider: Provider,
        client_id: str,
        address: str,
        scopes: tuple[str, ...],
        offline: bool | None,
        tenant_id: str | None,
    ) -> Grant:
        offline = self._consent(provider, client_id, address, scopes, offline, tenant_id)
        grant = Grant(
            grant_id="grant_" + secrets.token_hex(8),
            provider=provider,
            client_id=client_id,
            address=address,
            scopes=scopes,
            authenticated_at=self.now(),
            offline=offline,
        )
        self.grants[grant.grant_id] = grant
        return grant

    def create_authorization_code(
        self,
        provider: Provider,
        client_id: str,
        address: str,
        scopes: Iterable[str],
        *,
        code_challenge: str | None = None,
        code_challenge_method: str = "S256",
        offline: bool | None = None,
        tenant_id: str | None = None,
        redirect_uri: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """An authorization code, as the consent page would hand it out.

        The grant is made when the code is redeemed at the token endpoint. A code bound to a
        `redirect_uri` is redeemed only by a token request naming the same one.
        """
        scopes = tuple(scopes)
        with self.lock:
            offline = self._consent(provider, client_id, address, scopes, offline, tenant_id)
            now = self.now()
            code = AuthorizationCode(
                code=tokens.new_authorization_code(provider),
                provider=provider,
                client_id=client_id,
                address=address,
                scopes=scopes,
                issued_at=now,
                expires_at=now + self.lifetimes.authorization_code,
                offline=offline,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method,
                redirect_uri=redirect_uri,
                nonce=nonce,
            )
            self.codes[code.code] = code
            return code.code

    def _consent(
        self,
        provider: Provider,
        client_id: str,
        address: str,
        scopes: tuple[str, ...],
        offline: bool | None,
        tenant_id: str | None,
    ) -> bool:
        """Check a consent is possible and record the account; returns whether it is offline."""
        client = self.require_client(provider, client_id)
        _check_configured(client, scopes)
        self.record_consent(provider, client_id, address, scopes)
        if provider == "google":
            self.ensure_account(provider, address)
            return True if offline is None else offline
        # A Microsoft account lives in its own directory, by default the app's home tenant.
        known = self.accounts.get((provider, address.lower()))
        tenant_id = tenant_id or (known.tenant_id if known else None) or client.tenant_id
        self.ensure_account(provider, address, tenant_id=tenant_id)
        if offline is None:
            # "When a user approves the offline_access scope, your app can receive refresh tokens"
            offline = any(microsoft_key(scope) == "offline_access" for scope in scopes)
        return offline

    def grant_from_code(self, code: AuthorizationCode) -> Grant:
        """Redeem a code: mark it used and make its grant."""
        with self.lock:
            code.redeemed = True
            return self._new_grant(
                code.provider, code.client_id, code.address, code.scopes, code.offline, None
            )

    def grant_from_device_code(self, device: DeviceAuthorization) -> Grant:
        """Redeem an approved device code: mark it used and make its grant."""
        with self.lock:
            assert device.address is not None
            device.status = "redeemed"
            # Google: "refresh tokens are always returned for devices"; Microsoft: with
            # offline_access, as for any delegated grant.
            offline = True if device.provider == "google" else None
            return self._new_grant(
                device.provider, device.client_id, device.address, device.scopes, offline, None
            )

    # --- revocation ----------------------------------------------------------------------------

    def revoke_account(
        self, provider: Provider, address: str, *, revoke_access_tokens: bool = False
    ) -> float:
        """Move the account's "tokens valid from" to now (password change, revoke sessions).

        Grants made before now stop refreshing. Microsoft access tokens stay valid until they
        expire — "access tokens can't be revoked" — unless `revoke_access_tokens` simulates
        continuous access evaluation. Returns the new valid-from time.
        """
        with self.lock:
            account = self.account(provider, address)
            account.tokens_valid_from = self.now()
            if revoke_access_tokens:
                for token in self.access_tokens.values():
                    if (
                        token.provider == provider
                        and (token.address or "").lower() == address.lower()
                    ):
                        token.revoked = True
            return account.tokens_valid_from

    def revoke_refresh_token(self, token: str) -> bool:
        """Revoke one refresh token; False if it is unknown."""
        with self.lock:
            refresh = self.refresh_tokens.get(token)
            if refresh is None:
                return False
            refresh.revoked = True
            return True

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a whole grant: its refresh tokens and access tokens (Google's /revoke)."""
        with self.lock:
            self.grants[grant_id].revoked = True
            for refresh in self.refresh_tokens.values():
                if refresh.grant_id == grant_id:
                    refresh.revoked = True
            for access in self.access_tokens.values():
                if access.grant_id == grant_id:
                    access.revoked = True

    # --- tokens --------------------------------------------------------------------------------

    def issue_refresh_token(self, grant: Grant, value: str | None = None) -> RefreshToken:
        """A new refresh token for the grant (random unless `value` is given)."""
        with self.lock:
            value = value or tokens.new_refresh_token(grant.provider)
            now = self.now()
            refresh = RefreshToken(value, tokens.token_id(value), grant.grant_id, now, now)
            self.refresh_tokens[value] = refresh
            return refresh

    def issue_access_token(
        self,
        provider: Provider,
        client_id: str,
        address: str | None,
        scopes: tuple[str, ...],
        *,
        grant_id: str | None = None,
        audience: str | None = None,
        roles: tuple[str, ...] = (),
    ) -> AccessToken:
        """A new access token, living `lifetimes.access_token` seconds."""
        with self.lock:
            value = tokens.new_access_token(provider)
            now = self.now()
            access = AccessToken(
                token=value,
                token_id=tokens.token_id(value),
                provider=provider,
                client_id=client_id,
                address=address,
                scopes=scopes,
                issued_at=now,
                expires_at=now + self.lifetimes.access_token,
                grant_id=grant_id,
                audience=audience,
                roles=roles,
            )
            self.access_tokens[value] = access
            return access

    # --- faults --------------------------------------------------------------------------------

    def inject_fault(self, fault: Fault | None = None, **settings: Any) -> Fault:
        """Add a fault (a `Fault`, or its fields as keywords); faults apply in the order added."""
        fault = fault or Fault(**settings)
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError("a fault's status must be an HTTP error status (400-599)")
        if fault.delay < 0 or (fault.count is not None and fault.count < 1):
            raise ValueError("a fault needs a positive count and a non-negative delay")
        with self.lock:
            self.faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self.lock:
            self.faults.clear()

    def take_fault(
        self, provider: Provider | None, path: str, *, token_endpoint: bool
    ) -> Fault | None:
        """The first fault matching this request, counting it as used."""
        with self.lock:
            for fault in self.faults:
                if fault.provider is not None and fault.provider != provider:
                    continue
                if (fault.path is None and not token_endpoint) or (
                    fault.path is not None and fault.path != path
                ):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                return fault
            return None

    # --- request log ---------------------------------------------------------------------------

    def record(self, entry: RequestRecord, *, generation: int | None = None) -> None:
        """Append to the request log; dropped if `generation` is from before a reset."""
        with self.lock:
            if generation is None or generation == self.generation:
                self._log.append(entry)

    def requests(self, **criteria: object) -> list[RequestRecord]:
        """Logged requests whose fields equal every criterion, e.g. `grant_type="refresh_token"`."""
        known = {f.name for f in fields(RequestRecord)}
        unknown = set(criteria) - known
        if unknown:
            raise ValueError(f"unknown request fields: {', '.join(sorted(unknown))}")
        with self.lock:
            return [
                entry
                for entry in self._log
                if all(getattr(entry, name) == value for name, value in criteria.items())
            ]

    def count_requests(self, **criteria: object) -> int:
        """How many logged requests match (see `requests`)."""
        return len(self.requests(**criteria))

    def clear_request_log(self) -> None:
        """Empty the request log."""
        with self.lock:
            self._log.clear()


def _check_configured(client: Client, scopes: tuple[str, ...]) -> None:
    # A consent page only offers the API permissions configured on the app registration.
    if client.allowed_scopes is None:
        return
    refused = [s for s in scopes if s not in client.allowed_scopes and s.lower() not in OIDC_SCOPES]
    if refused:
        raise ValueError(f"scopes not configured for the app: {' '.join(refused)}")


def _google_subject() -> str:
    # Google `sub` values are 21-digit decimal strings.
    return str(secrets.randbelow(9 * 10**20) + 10**20)
