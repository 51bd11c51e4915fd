"""The sign-in routes: the start link mailgate prints, and the provider's redirect back."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

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
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
}


def page(request: Request, outcome: signin.Outcome) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        "signin.html",
        {"ok": outcome.ok, "title": outcome.title, "message": outcome.message},
        status_code=outcome.status_code,
        headers=NO_STORE,
    )


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/oauth2/start", include_in_schema=False)
    async def start(request: Request) -> Response:
        result = await signin.open_start_link(
            ctx, request.query_params.get("request", ""), dict(request.cookies)
        )
        if isinstance(result, signin.Outcome):
            return page(request, result)
        response = RedirectResponse(result.url, status_code=302, headers=NO_STORE)
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
