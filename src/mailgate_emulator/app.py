"""`create_app`: the emulator as one ASGI application."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from mailgate_emulator import browser, control, device, discovery, google, introspection, microsoft
from mailgate_emulator.endpoint import Sleep
from mailgate_emulator.responses import json_response
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.urls import RootPathMarker


def create_app(state: EmulatorState | None = None, *, sleep: Sleep = asyncio.sleep) -> Starlette:
    """The emulated Microsoft and Google endpoints, introspection and the control API.

    `state` is shared with the caller (a fresh one if omitted) and is also `app.state.emulator`.
    `sleep` is what an injected delay awaits. The app may be mounted under a path prefix
    (`app.mount("/demo-idp", create_app(state))`): every URL it hands out includes the prefix.
    """
    state = state or EmulatorState()
    app = Starlette(
        routes=[
            *control.routes(state),
            *discovery.routes(state),
            *microsoft.routes(state, sleep),
            *google.routes(state, sleep),
            *device.routes(state, sleep),
            *browser.routes(state, sleep),
            *introspection.routes(state, sleep),
        ],
        middleware=[Middleware(RootPathMarker)],
        exception_handlers={404: _not_found},
    )
    app.state.emulator = state
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_response({"error": "not_found", "path": request.url.path}, 404)
