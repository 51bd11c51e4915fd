"""The pages a browser visits: authorization, sign-in, consent, device code verification.

Microsoft: `GET /{tenant}/oauth2/v2.0/authorize`, `POST /{tenant}/login`, `POST /{tenant}/consent`,
`GET|POST /devicelogin`. Google: `GET /o/oauth2/v2/auth`, `POST /o/oauth2/v2/auth/login`,
`POST /o/oauth2/v2/auth/consent`, `GET|POST /device`. The flow's state stays on the server, keyed
by the pages' hidden `flow` field; a signed-in browser keeps a session cookie per provider.
`signin.py` decides what comes next; this module parses forms and renders its outcomes.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator import authorize, pages, signin
from mailgate_emulator import messages as msg
from mailgate_emulator.authorize import ErrorPage, PageError, RedirectError
from mailgate_emulator.endpoint import RequestLog, Sleep, apply_fault, read_form
from mailgate_emulator.model import BrowserSession, Provider, SignInFlow
from mailgate_emulator.responses import aad_timestamp
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.urls import emulator_base, emulator_root

SESSION_COOKIES: dict[Provider, str] = {
    "microsoft": "emulator_microsoft_session",
    "google": "emulator_google_session",
}
_NO_STORE = {
    "Cache-Control": "no-store, no-cache",
    "Pragma": "no-cache",
    # No script at all; the pages' own inline style; forms post to the emulator itself and are
    # redirected to the app's redirect URI (https, or http on loopback for tests).
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self' https: http://localhost:* http://127.0.0.1:*",
}


def _step_url(request: Request, flow: SignInFlow, step: str) -> str:
    root = emulator_root(request)
    if flow.provider == "microsoft":
        return f"{root}/{quote(flow.tenant, safe='')}/{step}"
    return f"{root}/o/oauth2/v2/auth/{step}"


def _device_url(request: Request, provider: Provider) -> str:
    return emulator_root(request) + ("/devicelogin" if provider == "microsoft" else "/device")


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status, headers=_NO_STORE)


def _error_response(provider: Provider, page: ErrorPage, now: float) -> HTMLResponse:
    details = page.details
    if provider == "microsoft" and not details:
        # What Entra's error page lists under "Troubleshooting details".
        details = (
            f"Request Id: {uuid.uuid4()}\nCorrelation Id: {uuid.uuid4()}\n"
            f"Timestamp: {aad_timestamp(now)}\nMessage: {page.message}"
        )
    text = pages.error_page(provider, heading=page.heading, message=page.message, details=details)
    return _html(text, page.status)


def render(
    state: EmulatorState, request: Request, provider: Provider, outcome: signin.Outcome
) -> Response:
    """The HTTP answer for a step's outcome."""
    if isinstance(outcome, signin.Redirect):
        return RedirectResponse(outcome.location, 302, headers=_NO_STORE)
    if isinstance(outcome, signin.ShowError):
        return _error_response(provider, outcome.page, state.now())
    if isinstance(outcome, signin.DeviceDecided):
        text = pages.device_done_page(provider, app=outcome.client_id, approved=outcome.approved)
        return _html(text)
    flow = outcome.flow
    if isinstance(outcome, signin.ShowSignIn):
        text = pages.sign_in_page(
            provider,
            action=_step_url(request, flow, "login"),
            flow_id=flow.flow_id,
            app=flow.client_id,
            login=outcome.login,
            login_error=outcome.login_error,
            password_error=outcome.password_error,
        )
        return _html(text)
    assert flow.address is not None
    text = pages.consent_page(
        provider,
        action=_step_url(request, flow, "consent"),
        flow_id=flow.flow_id,
        app=flow.client_id,
        account=flow.address,
        scopes=flow.scopes,
    )
    return _html(text)


def _flow_expired(provider: Provider) -> signin.ShowError:
    if provider == "microsoft":
        error = msg.FLOW_EXPIRED()
        return signin.ShowError(ErrorPage(400, f"AADSTS{error.code}", error.description))
    # Unverified wording.
    page = ErrorPage(400, "Error 400: invalid_request", "This sign-in request has expired.")
    return signin.ShowError(page)


def _logged_error(outcome: signin.Outcome) -> str | None:
    if isinstance(outcome, signin.ShowError):
        return outcome.page.heading
    if isinstance(outcome, signin.Redirect):
        errors = parse_qs(urlsplit(outcome.location).query).get("error")
        return errors[0] if errors else None
    return None


def _remember(request: Request, response: Response, session: BrowserSession | None) -> None:
    if session is None:
        return
    response.set_cookie(
        SESSION_COOKIES[session.provider],
        session.token,
        path=emulator_root(request) or "/",
        httponly=True,
        secure=emulator_base(request).startswith("https://"),
        samesite="lax",
    )


def routes(state: EmulatorState, sleep: Sleep) -> list[BaseRoute]:
    """The browser-facing routes of both providers."""

    async def authorization(request: Request, provider: Provider, segment: str) -> Response:
        query: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, value)
        log = RequestLog(
            state,
            request,
            provider,
            "authorize",
            tenant=segment if provider == "microsoft" else None,
            client_id=query.get("client_id"),
            scope=query.get("scope"),
        )
        faulted = await apply_fault(log, sleep, token_endpoint=False)
        if faulted is not None:
            return faulted
        outcome: signin.Outcome
        try:
            with state.lock:
                parsed = authorize.parse(state, provider, query, segment)
                cookie = request.cookies.get(SESSION_COOKIES[provider])
                session = state.find_session(provider, cookie)
                outcome = signin.start_authorization(state, parsed, session)
        except PageError as err:
            outcome = signin.ShowError(err.page)
        except RedirectError as err:
            outcome = signin.error_redirect(state, err)
        response = render(state, request, provider, outcome)
        log(response.status_code, error=_logged_error(outcome))
        return response

    async def login(request: Request, provider: Provider) -> Response:
        form = await read_form(request)
        session = None
        outcome: signin.Outcome
        with state.lock:
            flow = state.find_flow(provider, form.get("flow"))
            if flow is None:
                outcome = _flow_expired(provider)
            else:
                login_name, password = form.get("login", ""), form.get("password", "")
                outcome, session = signin.submit_login(state, flow, login_name, password)
        response = render(state, request, provider, outcome)
        _remember(request, response, session)
        return response

    async def consent(request: Request, provider: Provider) -> Response:
        form = await read_form(request)
        decision = form.get("decision")
        outcome: signin.Outcome
        with state.lock:
            flow = state.find_flow(provider, form.get("flow"))
            if flow is None or flow.address is None:
                outcome = _flow_expired(provider)
            elif decision not in ("accept", "cancel"):
                page = ErrorPage(400, "Bad request", "decision must be 'accept' or 'cancel'.")
                outcome = signin.ShowError(page)
            else:
                outcome = signin.submit_consent(state, flow, decision == "accept")
        return render(state, request, provider, outcome)

    async def device_verification(request: Request, provider: Provider) -> Response:
        action = _device_url(request, provider)
        if request.method == "GET":
            typed = request.query_params.get("user_code", "")
            return _html(pages.device_code_page(provider, action=action, user_code=typed))
        form = await read_form(request)
        typed = form.get("user_code", "")
        with state.lock:
            result = signin.start_device_verification(state, provider, typed)
        if isinstance(result, str):
            page = pages.device_code_page(provider, action=action, error=result, user_code=typed)
            return _html(page)
        return render(state, request, provider, result)

    async def ms_authorize(request: Request) -> Response:
        return await authorization(request, "microsoft", request.path_params["tenant"])

    async def ms_login(request: Request) -> Response:
        return await login(request, "microsoft")

    async def ms_consent(request: Request) -> Response:
        return await consent(request, "microsoft")

    async def ms_device(request: Request) -> Response:
        return await device_verification(request, "microsoft")

    async def g_authorize(request: Request) -> Response:
        return await authorization(request, "google", "common")

    async def g_login(request: Request) -> Response:
        return await login(request, "google")

    async def g_consent(request: Request) -> Response:
        return await consent(request, "google")

    async def g_device(request: Request) -> Response:
        return await device_verification(request, "google")

    return [
        Route("/{tenant}/oauth2/v2.0/authorize", ms_authorize, methods=["GET"]),
        Route("/{tenant}/login", ms_login, methods=["POST"]),
        Route("/{tenant}/consent", ms_consent, methods=["POST"]),
        Route("/devicelogin", ms_device, methods=["GET", "POST"]),
        Route("/o/oauth2/v2/auth", g_authorize, methods=["GET"]),
        Route("/o/oauth2/v2/auth/login", g_login, methods=["POST"]),
        Route("/o/oauth2/v2/auth/consent", g_consent, methods=["POST"]),
        Route("/device", g_device, methods=["GET", "POST"]),
    ]
