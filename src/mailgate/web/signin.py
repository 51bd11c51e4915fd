"""The sign-in routes: the start link mailgate prints, and the provider's redirect back."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mailgate.config import CALLBACK_PATH
from mailgate.context import Context
from mailgate.oauth import signin

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# The pages carry nothing secret, but must never be cached or framed.
NO_STORE = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    # form-action: the start page's form posts to mailgate itself (and is then redirected to
    # the provider, which form-action also governs).
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self' https: http://localhost:* http://127.0.0.1:*",
    # same-origin, not no-referrer: under no-referrer Chromium posts the start page's Continue
    # with `Origin: null`, which the guard refuses as another site's. The start link's token and
    # the callback's code still never reach another site.
    "Referrer-Policy": "same-origin",
}


def page(request: Request, outcome: signin.Outcome) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        "signin.html",
        {
            "ok": outcome.ok,
            "title": outcome.title,
            "message": outcome.message,
            # The admin who started the sign-in goes back to the integration's page.
            "back": f"/integrations/{quote(outcome.integration, safe='')}"
            if outcome.integration
            else None,
            "integration": outcome.integration,
        },
        status_code=outcome.status_code,
        headers=NO_STORE,
    )


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/oauth2/start", include_in_schema=False)
    async def start(request: Request) -> Response:
        """The start link: says where it leads; only "Continue" (a POST) starts the sign-in,
        so a link preview or a mail scanner that fetches the link first takes nothing."""
        token = request.query_params.get("request", "")
        result = await signin.look_at_start_link(ctx, token, dict(request.cookies))
        if isinstance(result, signin.Outcome):
            return page(request, result)
        return TEMPLATES.TemplateResponse(
            request,
            "signin_start.html",
            {
                "title": f"Sign in to {result.provider}",
                "integration": result.integration,
                "provider": result.provider,
                "login_hint": result.login_hint,
                "request_token": token,
                "action": ctx.settings.base_url + "/oauth2/start",
            },
            headers=NO_STORE,
        )

    @routes.post("/oauth2/start", include_in_schema=False)
    async def start_continue(request: Request) -> Response:
        form = await request.form()
        token = form.get("request")
        result = await signin.open_start_link(
            ctx, token if isinstance(token, str) else "", dict(request.cookies)
        )
        if isinstance(result, signin.Outcome):
            return page(request, result)
        # 303: the browser follows with a GET to the provider (RFC 9110 §15.4.4).
        response = RedirectResponse(result.url, status_code=303, headers=NO_STORE)
        # Lax: sent on the provider's top-level redirect back to the callback, not on
        # cross-site sub-requests.
        response.set_cookie(
            result.cookie_name,
            result.cookie_value,
            max_age=result.max_age,
            # Behind a proxy that serves mailgate under a path, the callback is under it too.
            path=urlsplit(ctx.settings.base_url).path.rstrip("/") + "/oauth2",
            secure=True,
            httponly=True,
            samesite="lax",
        )
        return response

    @routes.get(CALLBACK_PATH, include_in_schema=False)
    async def callback(request: Request) -> Response:
        query = request.query_params
        outcome = await signin.complete(
            ctx,
            state=query.get("state"),
            code=query.get("code"),
            error=query.get("error"),
            error_description=query.get("error_description"),
            cookies=dict(request.cookies),
        )
        return page(request, outcome)

    return routes
