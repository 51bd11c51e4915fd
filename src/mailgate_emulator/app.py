"""The emulator as one ASGI application: whole for tests (`create_app`), or only what a person
signing in needs, to serve to the public (`create_sign_in_app`, for `mailgate serve --demo`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator import browser, control, device, discovery, google, introspection, microsoft
from mailgate_emulator.endpoint import Sleep
from mailgate_emulator.limits import MAX_FORM_BODY, BodyLimit
from mailgate_emulator.responses import json_response
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.urls import RootPathMarker

# What a person signing in needs, and nothing else: an allow-list, so that a route added to the
# emulator for tests (its control API, introspection) is never served to the public by default.
SIGN_IN_ROUTES = frozenset(
    {
        # Microsoft: discovery and keys, the authorization and device flows, the token endpoint.
        "/{tenant}/v2.0/.well-known/openid-configuration",
        "/{tenant}/discovery/v2.0/keys",
        "/{tenant}/oauth2/v2.0/authorize",
        "/{tenant}/login",
        "/{tenant}/consent",
        "/{tenant}/oauth2/v2.0/devicecode",
        "/devicelogin",
        "/{tenant}/oauth2/v2.0/token",
        # Google: the same, and revocation, which `mailgate credential revoke` calls.
        "/.well-known/openid-configuration",
        "/oauth2/v3/certs",
        "/o/oauth2/v2/auth",
        "/o/oauth2/v2/auth/login",
        "/o/oauth2/v2/auth/consent",
        "/device/code",
        "/device",
        "/token",
        "/revoke",
    }
)


def create_app(state: EmulatorState | None = None, *, sleep: Sleep = asyncio.sleep) -> Starlette:
    """The emulated Microsoft and Google endpoints, introspection and the control API.

    `state` is shared with the caller (a fresh one if omitted) and is also `app.state.emulator`.
    `sleep` is what an injected delay awaits. The app may be mounted under a path prefix
    (`app.mount("/demo-idp", create_app(state))`): every URL it hands out includes the prefix.
    """
    state = state or EmulatorState()
    routes = [*control.routes(state), *_provider_routes(state, sleep)]
    return _starlette(state, routes, [Middleware(RootPathMarker)])


def create_sign_in_app(
    state: EmulatorState,
    *,
    public_url: str,
    max_body: int = MAX_FORM_BODY,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """Only the routes of `SIGN_IN_ROUTES` — never the control API — for serving to the public.

    Every URL it hands out (discovery, ID token issuers, device verification URIs) starts with
    `public_url`, the address it is reached at (e.g. `https://desk.example/demo-idp`), never with
    the request's `Host`; a request body over `max_bytes` is answered 413 without being read.
    """
    routes = [
        route
        for route in _provider_routes(state, sleep)
        if isinstance(route, Route) and route.path in SIGN_IN_ROUTES
    ]
    missing = SIGN_IN_ROUTES - {route.path for route in routes}
    if missing:
        raise RuntimeError(f"the emulator has no route {sorted(missing)}")
    middleware = [
        Middleware(BodyLimit, max_bytes=max_body),
        Middleware(RootPathMarker, public_url=public_url),
    ]
    return _starlette(state, routes, middleware)


def _provider_routes(state: EmulatorState, sleep: Sleep) -> list[BaseRoute]:
    """Every route that answers as a provider does (all but the control API)."""
    return [
        *discovery.routes(state),
        *microsoft.routes(state, sleep),
        *google.routes(state, sleep),
        *device.routes(state, sleep),
        *browser.routes(state, sleep),
        *introspection.routes(state, sleep),
    ]


def _starlette(
    state: EmulatorState, routes: Sequence[BaseRoute], middleware: list[Middleware]
) -> Starlette:
    app = Starlette(
        routes=list(routes), middleware=middleware, exception_handlers={404: _not_found}
    )
    app.state.emulator = state
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_response({"error": "not_found", "path": request.url.path}, 404)
