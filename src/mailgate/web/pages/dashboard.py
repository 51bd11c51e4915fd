"""`/`: what needs the admin first, then each mailbox's state."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.web.shell import render


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        return await render(request, ctx, "dashboard.html", {"title": "Dashboard"})

    return routes
