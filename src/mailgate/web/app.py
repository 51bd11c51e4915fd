"""The web application: the admin pages, sign-in, the OAuth 2.0 start link and callback, health.

Every request passes `guard.Guard` first: nothing but the routes it lists as open answers an
anonymous visitor, and only an admin opens the configuration pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mailgate import __version__, metrics
from mailgate.context import Context
from mailgate.runtime.state_metrics import state_text
from mailgate.runtime.supervisor import Supervisor
from mailgate.web import account, pages
from mailgate.web.api import PREFIX as API_PREFIX
from mailgate.web.api import create_api
from mailgate.web.api.common import problem
from mailgate.web.demo import ensure_demo_integration, mount_demo
from mailgate.web.guard import Guard
from mailgate.web.redirects import redirect_slashes_to_base_url
from mailgate.web.signin import router as signin_routes

STATIC = Path(__file__).parent / "static"
log = structlog.get_logger(__name__)


def create_app(
    ctx: Context, *, run_workers: bool = True, demo: bool = False, tidy_heap: bool = False
) -> FastAPI:
    """The ASGI app for `mailgate serve`; the supervisor runs inside its lifespan."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if demo:
            await ensure_demo_integration(ctx)
        supervisor = Supervisor(ctx, tidy_heap=tidy_heap)
        task = asyncio.create_task(supervisor.run()) if run_workers else None
        try:
            yield
        finally:
            supervisor.stop()
            if task is not None:
                await task
            await ctx.close()

    app = FastAPI(
        title="mailgate",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    app.state.demo = demo
    redirect_slashes_to_base_url(app.router, ctx.settings.base_url)
    app.include_router(signin_routes(ctx))
    app.include_router(account.router(ctx, demo=demo))
    for page_routes in pages.routers(ctx):
        app.include_router(page_routes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(API_PREFIX, create_api(ctx), name="api")
    if demo:
        mount_demo(app, ctx)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if await ctx.db.is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {
                "status": "not ready",
                "detail": "the database is unreachable, read-only or not migrated",
            },
            status_code=503,
        )

    @app.get("/metrics")
    async def metrics_text() -> Response:
        body = metrics.exposition(await state_text(ctx))
        return PlainTextResponse(body, media_type=metrics.CONTENT_TYPE)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        """Under /api/ a problem (RFC 9457) even for a path the API's mount can't take (an
        encoded line break: the mount's pattern does not match across lines)."""
        if request.url.path.startswith(API_PREFIX + "/"):
            return problem(error.status_code, "No such route: /api/v1/docs lists them.")
        return await http_exception_handler(request, error)

    app.add_middleware(Guard, ctx=ctx, demo=demo)
    if ctx.settings.trusted_proxies:
        # The client's address (sign-in slow-down, audit log) and scheme from these proxies only.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(ctx.settings.trusted_proxies))
    return app
