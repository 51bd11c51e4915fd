"""The buttons of an integration's page: Test connection (its steps live), Authorize (the browser
sign-in), App-only token (client credentials). Device code is integration_device.py.

Authorize reuses `mailgate integration authorize`'s machinery (`oauth/signin.py`): the POST
records the sign-in request and answers 303 to its start link on mailgate itself, whose
Continue button binds the request to this browser and sends it to the provider; the provider
comes back to `/oauth2/callback`, whose page says "Connected as …" and links back here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, NotFound
from mailgate.oauth.check import check_integration
from mailgate.oauth.flows import authorize_client_credentials
from mailgate.oauth.signin import begin
from mailgate.web.pages.integrations import integration_href, integration_page, missing
from mailgate.web.shell import done, form_values
from mailgate.web.steps import step_stream, wants_step_stream


def failure_status(problem: MailgateError) -> int:
    """400 for what the admin typed or set up wrong; 502 when the provider refused."""
    return 400 if isinstance(problem, BadInput) else 502


async def action_failed(
    request: Request, ctx: Context, name: str, problem: MailgateError, **extra: Any
) -> Response:
    """The integration's page again, the action's sentence inline (404 for no integration)."""
    if isinstance(problem, NotFound):
        return await missing(request, ctx, problem)
    return await integration_page(
        request, ctx, name, action_error=str(problem), status_code=failure_status(problem), **extra
    )


async def sign_in(ctx: Context, name: str, login_hint: str | None) -> RedirectResponse:
    """Start a browser sign-in under integration `name`: 303 to its start link."""
    started = await begin(ctx, name, login_hint=login_hint)
    return RedirectResponse(started.start_url, status_code=303)


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.post("/integrations/{name}/test", include_in_schema=False)
    async def test(request: Request, name: str) -> Response:
        if wants_step_stream(request):
            return step_stream(lambda on_step: check_integration(ctx, name, on_step=on_step))
        try:
            report = await check_integration(ctx, name)
        except MailgateError as problem:
            return await action_failed(request, ctx, name, problem)
        return await integration_page(request, ctx, name, report=report)

    @routes.post("/integrations/{name}/authorize", include_in_schema=False)
    async def authorize(request: Request, name: str) -> Response:
        login_hint = (await form_values(request)).get("login_hint", "").strip() or None
        try:
            return await sign_in(ctx, name, login_hint)
        except MailgateError as problem:
            return await action_failed(request, ctx, name, problem, login_hint=login_hint)

    @routes.post("/integrations/{name}/app-token", include_in_schema=False)
    async def app_token(request: Request, name: str) -> Response:
        try:
            credential = await authorize_client_credentials(ctx, name)
        except MailgateError as problem:
            return await action_failed(request, ctx, name, problem)
        expires = f"{credential.expires_at:%Y-%m-%d %H:%M} UTC" if credential.expires_at else "—"
        return await done(
            request,
            ctx,
            integration_href(name),
            f"App-only token obtained (credential {credential.id}), valid until {expires}.",
        )

    return routes
