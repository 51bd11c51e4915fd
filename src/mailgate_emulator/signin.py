"""The browser sign-in as a state machine: what comes next after each page, as data.

    authorize ──► sign-in page ──► consent page ──► redirect to the app with a code
        │  (a live session skips        │  (skipped when the scopes were consented before,
        │   the sign-in page)           │   unless prompt=consent)
        └─ prompt=none: straight to the redirect, or `login_required` / `consent_required`

    device verification page ──► sign-in page ──► consent page ──► "You have signed in"

Each step returns an `Outcome` (a page to show or a redirect); `browser.py` renders it. Nothing
here touches HTTP, so `complete_authorization` drives the same steps for tests without HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate_emulator import messages as msg
from mailgate_emulator.authorize import ErrorPage, RedirectError
from mailgate_emulator.errors import EmulatedError, GoogleError, MicrosoftError
from mailgate_emulator.model import (
    Account,
    AuthorizationRequest,
    BrowserSession,
    Provider,
    SignInFlow,
)
from mailgate_emulator.pages import COPY
from mailgate_emulator.responses import microsoft_error_body
from mailgate_emulator.scopes import join_scope
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.tenants import CONSUMERS_TENANT_ID
from mailgate_emulator.urls import with_query


@dataclass(frozen=True)
class ShowSignIn:
    """The login form (again, with an error after a failed attempt)."""

    flow: SignInFlow
    login: str = ""
    login_error: str | None = None
    password_error: str | None = None


@dataclass(frozen=True)
class ShowConsent:
    """The permissions page for the signed-in account."""

    flow: SignInFlow


@dataclass(frozen=True)
class Redirect:
    """Back to the app (RFC 6749 §4.1.2): a code or an error in the redirect URI's query."""

    location: str


@dataclass(frozen=True)
class DeviceDecided:
    """The device code was approved or declined; the device learns it by polling."""

    client_id: str
    approved: bool


@dataclass(frozen=True)
class ShowError:
    """A dead end."""

    page: ErrorPage


Outcome = ShowSignIn | ShowConsent | Redirect | DeviceDecided | ShowError


def error_redirect(state: EmulatorState, refusal: RedirectError) -> Redirect:
    """The redirect carrying an error (RFC 6749 §4.1.2.1), in the provider's shape."""
    err = refusal.error
    params: dict[str, str | None] = {"error": err.error}
    if isinstance(err, MicrosoftError):
        # Entra ID sends the same description as its token errors, trace ids included
        # (MicrosoftDocs/azure-docs#114009), and an `error_uri`.
        body = microsoft_error_body(err, state.now())
        params.update(error_description=body["error_description"], error_uri=body["error_uri"])
    elif isinstance(err, GoogleError) and err.description:
        params["error_description"] = err.description
    params["state"] = refusal.state
    return Redirect(with_query(refusal.redirect_uri, params))


def _refuse(state: EmulatorState, flow: SignInFlow, error: EmulatedError) -> Redirect:
    request = flow.authorization
    assert request is not None
    state.end_flow(flow)
    return error_redirect(state, RedirectError(request.redirect_uri, request.state, error))


def _declined(provider: Provider) -> EmulatedError:
    if provider == "microsoft":
        return msg.USER_DECLINED_CONSENT()
    # Google: "https://oauth2.example.com/auth?error=access_denied" (no description).
    return GoogleError("access_denied", "", 400)


def _silent_failure(provider: Provider, client_id: str, signed_in: bool) -> EmulatedError:
    if provider == "microsoft":
        if signed_in:
            return msg.CONSENT_REQUIRED_REDIRECT(client_id=client_id)
        return msg.LOGIN_REQUIRED()
    # OpenID Connect Core §3.1.2.6 error codes, as Google uses them.
    return GoogleError("consent_required" if signed_in else "login_required", "", 400)


def account_fits_tenant(state: EmulatorState, account: Account, segment: str) -> bool:
    """Whether a Microsoft account may sign in at `/{segment}` (Google: always)."""
    if account.provider == "google":
        return True
    tenant_id = (account.tenant_id or "").lower()
    key = segment.lower()
    if key == "common":
        return True
    if key == "organizations":
        return tenant_id != CONSUMERS_TENANT_ID
    if key == "consumers":
        return tenant_id == CONSUMERS_TENANT_ID
    tenant = state.find_tenant(segment)
    return tenant is not None and tenant.tenant_id.lower() == tenant_id


def start_authorization(
    state: EmulatorState, request: AuthorizationRequest, session: BrowserSession | None
) -> Outcome:
    """The first page of a validated authorization request (or the redirect, if silent)."""
    flow = state.begin_flow(
        request.provider,
        request.client_id,
        request.scopes,
        request.tenant,
        authorization=request,
        login_hint=request.login_hint,
    )
    if session is not None:
        account = state.account(session.provider, session.address)
        if not account_fits_tenant(state, account, request.tenant):
            session = None
    if "none" in request.prompt:
        # OpenID Connect Core §3.1.2.1: "The Authorization Server MUST NOT display any
        # authentication or consent user interface pages."
        if session is None:
            return _refuse(state, flow, _silent_failure(request.provider, request.client_id, False))
        _signed_in(flow, session)
        return after_sign_in(state, flow, silent=True)
    if session is not None and not request.prompt & {"login", "select_account"}:
        _signed_in(flow, session)
        return after_sign_in(state, flow)
    return ShowSignIn(flow, login=request.login_hint or (session.address if session else ""))


def start_device_verification(
    state: EmulatorState, provider: Provider, user_code: str
) -> Outcome | str:
    """A typed user code: its sign-in page, or the error text to show beside the code field."""
    copy = COPY[provider]
    device = state.find_device_authorization(user_code, provider)
    if device is None or device.status != "pending":
        return copy.device_wrong_code
    if state.now() >= device.expires_at:
        return copy.device_expired_code
    flow = state.begin_flow(
        provider, device.client_id, device.scopes, device.tenant, user_code=device.user_code
    )
    return ShowSignIn(flow)


def submit_login(
    state: EmulatorState, flow: SignInFlow, login: str, password: str
) -> tuple[Outcome, BrowserSession | None]:
    """Check the password; on success the browser gets a session and the flow moves on."""
    copy = COPY[flow.provider]
    login = login.strip()
    try:
        known = state.account(flow.provider, login)
    except KeyError:
        known = None
    if known is None or not account_fits_tenant(state, known, flow.tenant):
        return ShowSignIn(flow, login=login, login_error=copy.unknown_account), None
    account = state.check_password(flow.provider, login, password)
    if account is None:
        return ShowSignIn(flow, login=login, password_error=copy.wrong_password), None
    session = state.start_session(flow.provider, account.address)
    _signed_in(flow, session)
    return after_sign_in(state, flow), session


def _signed_in(flow: SignInFlow, session: BrowserSession) -> None:
    flow.address = session.address
    flow.session_state = session.session_state


def after_sign_in(state: EmulatorState, flow: SignInFlow, *, silent: bool = False) -> Outcome:
    """Who signed in is known: consent, or go straight back to the app."""
    assert flow.address is not None
    request = flow.authorization
    if request is None:
        # The device verification page always asks (Microsoft: "Are you trying to sign in to…").
        return ShowConsent(flow)
    account = state.account(flow.provider, flow.address)
    client = state.require_client(flow.provider, flow.client_id)
    if state.admin_consent_missing(client, account, request.scopes):
        return _refuse(state, flow, msg.CONSENT_REQUIRED_REDIRECT(client_id=client.client_id))
    consented = state.has_consented(flow.provider, flow.client_id, flow.address, request.scopes)
    if "consent" in request.prompt or not consented:
        if silent:
            return _refuse(state, flow, _silent_failure(flow.provider, flow.client_id, True))
        return ShowConsent(flow)
    return _complete(state, flow, consent_shown=False)


def submit_consent(state: EmulatorState, flow: SignInFlow, accept: bool) -> Outcome:
    """Accept or Cancel on the consent page."""
    assert flow.address is not None
    if flow.authorization is None:
        assert flow.user_code is not None
        state.end_flow(flow)
        try:
            state.approve_device_code(
                flow.user_code, flow.address, deny=not accept, provider=flow.provider
            )
        except (KeyError, ValueError):
            copy = COPY[flow.provider]
            return ShowError(ErrorPage(400, copy.device_title, copy.device_expired_code))
        return DeviceDecided(flow.client_id, approved=accept)
    if not accept:
        return _refuse(state, flow, _declined(flow.provider))
    return _complete(state, flow, consent_shown=True)


def _complete(state: EmulatorState, flow: SignInFlow, *, consent_shown: bool) -> Redirect:
    request = flow.authorization
    assert request is not None and flow.address is not None
    offline: bool | None = None  # Microsoft: refresh tokens follow offline_access
    scopes = request.scopes
    if request.provider == "google":
        # Google issues a refresh token with access_type=offline only when the user saw the
        # consent screen: the first time, or with prompt=consent.
        offline = request.access_type == "offline" and consent_shown
        if request.include_granted_scopes:
            # Incremental authorization: "the new access token will also cover any scopes to
            # which the user previously granted the application access."
            earlier = state.consented_scopes("google", request.client_id, flow.address)
            scopes += tuple(sorted(earlier - set(scopes)))
    code = state.create_authorization_code(
        request.provider,
        request.client_id,
        flow.address,
        scopes,
        code_challenge=request.code_challenge,
        code_challenge_method=request.code_challenge_method,
        offline=offline,
        redirect_uri=request.redirect_uri,
        nonce=request.nonce,
    )
    state.end_flow(flow)
    params: dict[str, str | None]
    if request.provider == "microsoft":
        params = {"code": code, "state": request.state, "session_state": flow.session_state}
    else:
        # Google adds the granted scopes, the account's index and whether consent was shown.
        params = {
            "state": request.state,
            "code": code,
            "scope": join_scope(scopes),
            "authuser": "0",
            "prompt": "consent" if consent_shown else "none",
        }
    return Redirect(with_query(request.redirect_uri, params))


def complete_authorization(
    state: EmulatorState, request: AuthorizationRequest, account: str, *, accept: bool = True
) -> str:
    """Where the browser would land if `account` signed in and chose Accept (or Cancel).

    For tests that do not drive the HTML; the consent rules (and admin consent) still apply.
    """
    client = state.require_client(request.provider, request.client_id)
    try:
        address = state.account(request.provider, account).address
    except KeyError:
        home = client.tenant_id if request.provider == "microsoft" else None
        address = state.ensure_account(request.provider, account, tenant_id=home).address
    flow = state.begin_flow(
        request.provider,
        request.client_id,
        request.scopes,
        request.tenant,
        authorization=request,
    )
    flow.address = address
    outcome = after_sign_in(state, flow)
    if isinstance(outcome, ShowConsent):
        outcome = submit_consent(state, flow, accept)
    assert isinstance(outcome, Redirect)
    return outcome.location
