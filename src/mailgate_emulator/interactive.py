"""What the emulated providers remember about people at a browser: passwords, consents, sessions.

`InteractiveState` is a mixin of `EmulatorState`: the sign-in pages, the device verification pages
and the control API call these methods, and tests call them directly — e.g. `approve_device_code`
instead of driving the HTML. Every method takes the state's lock.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from collections.abc import Iterable

from mailgate_emulator import tokens
from mailgate_emulator.model import (
    Account,
    AuthorizationRequest,
    BrowserSession,
    Client,
    DeviceAuthorization,
    Lifetimes,
    Provider,
    SignInFlow,
)
from mailgate_emulator.scopes import OIDC_SCOPES, microsoft_key

# A consent is remembered per provider, client and account, as scope keys.
ConsentKey = tuple[Provider, str, str]


def scope_key(provider: Provider, scope: str) -> str:
    """How a provider compares scopes: Microsoft case-insensitively and by resource alias."""
    return microsoft_key(scope) if provider == "microsoft" else scope


class InteractiveState:
    """Accounts with passwords, consents, browser sessions, sign-in flows and device codes."""

    # Provided by `EmulatorState`.
    lock: threading.RLock
    lifetimes: Lifetimes
    accounts: dict[tuple[Provider, str], Account]

    def _clear_interactive(self) -> None:
        self.consents: dict[ConsentKey, set[str]] = {}
        # (client_id, tenant id): the scope keys an administrator consented to (None: all).
        self.admin_consents: dict[tuple[str, str], frozenset[str] | None] = {}
        self.sessions: dict[str, BrowserSession] = {}
        self.flows: dict[str, SignInFlow] = {}
        self.device_authorizations: dict[str, DeviceAuthorization] = {}

    # Provided by `EmulatorState`.
    def now(self) -> float:
        raise NotImplementedError

    def ensure_account(
        self, provider: Provider, address: str, *, tenant_id: str | None = None
    ) -> Account:
        raise NotImplementedError

    def require_client(self, provider: Provider, client_id: str) -> Client:
        raise NotImplementedError

    # --- accounts ------------------------------------------------------------------------------

    def register_account(
        self,
        provider: Provider,
        address: str,
        password: str,
        *,
        tenant_id: str | None = None,
        display_name: str | None = None,
    ) -> Account:
        """A test user who can sign in on the emulated pages. Microsoft accounts need a tenant."""
        if provider == "microsoft" and not tenant_id:
            raise ValueError("a Microsoft account lives in a directory: give its tenant_id")
        if not password:
            raise ValueError("an account that signs in needs a password")
        with self.lock:
            account = self.ensure_account(provider, address, tenant_id=tenant_id)
            account.password = password
            account.display_name = display_name or account.display_name
            return account

    def check_password(self, provider: Provider, address: str, password: str) -> Account | None:
        """The account, if it exists and `password` is its password."""
        with self.lock:
            account = self.accounts.get((provider, address.strip().lower()))
        if account is None or account.password is None:
            return None
        if not hmac.compare_digest(account.password.encode(), password.encode()):
            return None
        return account

    # --- consent -------------------------------------------------------------------------------

    def record_consent(
        self, provider: Provider, client_id: str, address: str, scopes: Iterable[str]
    ) -> None:
        """Remember that the account consented to these scopes for the client."""
        with self.lock:
            consented = self.consents.setdefault((provider, client_id, address.lower()), set())
            consented.update(scope_key(provider, scope) for scope in scopes)

    def has_consented(
        self, provider: Provider, client_id: str, address: str, scopes: Iterable[str]
    ) -> bool:
        """Whether every scope was consented before (so the consent page can be skipped)."""
        with self.lock:
            consented = self.consents.get((provider, client_id, address.lower()))
            if consented is None:
                return False
            return all(scope_key(provider, scope) in consented for scope in scopes)

    def consented_scopes(self, provider: Provider, client_id: str, address: str) -> set[str]:
        """The scope keys the account consented to for the client so far."""
        with self.lock:
            return set(self.consents.get((provider, client_id, address.lower()), ()))

    def grant_admin_consent(
        self, client_id: str, tenant_id: str, scopes: Iterable[str] | None = None
    ) -> None:
        """An administrator of `tenant_id` consents for everyone (to `scopes`, or to all)."""
        with self.lock:
            keys = (
                frozenset(microsoft_key(scope) for scope in scopes) if scopes is not None else None
            )
            self.admin_consents[(client_id, tenant_id.lower())] = keys

    def admin_consent_missing(
        self, client: Client, account: Account, scopes: Iterable[str]
    ) -> bool:
        """Whether the app needs an administrator's consent in the account's directory first."""
        if not client.admin_consent_required:
            return False
        with self.lock:
            key = (client.client_id, (account.tenant_id or "").lower())
            if key not in self.admin_consents:
                return True
            granted = self.admin_consents[key]
            if granted is None:
                return False
            # Signing in (openid, profile, email, offline_access) needs no administrator.
            return any(
                microsoft_key(scope) not in granted
                for scope in scopes
                if scope.lower() not in OIDC_SCOPES
            )

    # --- browser sessions ----------------------------------------------------------------------

    def start_session(self, provider: Provider, address: str) -> BrowserSession:
        """Remember a browser that signed in (its cookie holds `token`)."""
        with self.lock:
            session = BrowserSession(
                token=tokens.new_opaque_id(),
                provider=provider,
                address=address,
                authenticated_at=self.now(),
                session_state=str(uuid.uuid4()),
            )
            self.sessions[session.token] = session
            return session

    def find_session(self, provider: Provider, token: str | None) -> BrowserSession | None:
        """The browser's live session; a password change or revocation ends it."""
        if not token:
            return None
        with self.lock:
            session = self.sessions.get(token)
            if session is None or session.provider != provider:
                return None
            account = self.accounts.get((provider, session.address.lower()))
            if account is None or session.authenticated_at < account.tokens_valid_from:
                return None
            return session

    # --- sign-in flows -------------------------------------------------------------------------

    def begin_flow(
        self,
        provider: Provider,
        client_id: str,
        scopes: tuple[str, ...],
        tenant: str,
        *,
        authorization: AuthorizationRequest | None = None,
        user_code: str | None = None,
        login_hint: str | None = None,
    ) -> SignInFlow:
        """Start a browser sign-in that ends in a code (`authorization`) or a device approval."""
        with self.lock:
            flow = SignInFlow(
                flow_id=tokens.new_opaque_id(),
                provider=provider,
                client_id=client_id,
                scopes=scopes,
                tenant=tenant,
                created_at=self.now(),
                authorization=authorization,
                user_code=user_code,
                login_hint=login_hint,
            )
            self.flows[flow.flow_id] = flow
            return flow

    def find_flow(self, provider: Provider, flow_id: str | None) -> SignInFlow | None:
        """The sign-in in progress with this id, if it is this provider's and not too old."""
        with self.lock:
            flow = self.flows.get(flow_id or "")
            if flow is None or flow.provider != provider:
                return None
            if self.now() >= flow.created_at + self.lifetimes.sign_in_flow:
                del self.flows[flow.flow_id]
                return None
            return flow

    def end_flow(self, flow: SignInFlow) -> None:
        """Forget a finished sign-in (its pages cannot be posted again)."""
        with self.lock:
            self.flows.pop(flow.flow_id, None)

    # --- device codes (RFC 8628) ---------------------------------------------------------------

    def create_device_authorization(
        self, provider: Provider, client_id: str, scopes: tuple[str, ...], tenant: str = "common"
    ) -> DeviceAuthorization:
        """A device code and user code, as the device authorization endpoint hands them out."""
        with self.lock:
            self.require_client(provider, client_id)
            now = self.now()
            lifetime = (
                self.lifetimes.microsoft_device_code
                if provider == "microsoft"
                else self.lifetimes.google_device_code
            )
            device = DeviceAuthorization(
                device_code=tokens.new_device_code(provider),
                user_code=self._unused_user_code(provider),
                provider=provider,
                client_id=client_id,
                scopes=scopes,
                issued_at=now,
                expires_at=now + lifetime,
                interval=self.lifetimes.device_poll_interval,
                tenant=tenant,
            )
            self.device_authorizations[device.device_code] = device
            return device

    def _unused_user_code(self, provider: Provider) -> str:
        while True:
            code = tokens.new_user_code(provider)
            if self.find_device_authorization(code, provider) is None:
                return code

    def find_device_authorization(
        self, user_code: str, provider: Provider | None = None
    ) -> DeviceAuthorization | None:
        """The device authorization a person's user code names (Microsoft ignores case)."""
        typed = user_code.strip()
        with self.lock:
            for device in self.device_authorizations.values():
                if provider is not None and device.provider != provider:
                    continue
                if device.user_code == typed or (
                    device.provider == "microsoft" and device.user_code == typed.upper()
                ):
                    return device
            return None

    def approve_device_code(
        self,
        user_code: str,
        account: str,
        *,
        deny: bool = False,
        provider: Provider | None = None,
    ) -> DeviceAuthorization:
        """What the verification page does when `account` accepts (or, with `deny`, cancels).

        `KeyError` for an unknown user code; `ValueError` if it expired or was already decided.
        Approving records the account's consent to the scopes.
        """
        with self.lock:
            device = self.find_device_authorization(user_code, provider)
            if device is None:
                raise KeyError(f"no device authorization has user code {user_code!r}")
            if self.now() >= device.expires_at:
                raise ValueError(f"user code {device.user_code} has expired")
            if device.status != "pending":
                raise ValueError(f"user code {device.user_code} was already {device.status}")
            tenant_id = None
            if device.provider == "microsoft":
                known = self.accounts.get((device.provider, account.lower()))
                tenant_id = known.tenant_id if known else None
                if tenant_id is None:
                    tenant_id = self.require_client(device.provider, device.client_id).tenant_id
            self.ensure_account(device.provider, account, tenant_id=tenant_id)
            device.address = account
            device.status = "denied" if deny else "approved"
            if not deny:
                self.record_consent(device.provider, device.client_id, account, device.scopes)
            return device
