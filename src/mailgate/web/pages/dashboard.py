"""`/`: what needs the admin first, then each mailbox's state and the short totals.

`/dashboard/live` answers the same live part as an HTML fragment: `static/dashboard.js` fetches
it every few seconds and swaps it in, so the counts move while the admin watches. Without
JavaScript the page is complete, and a reload updates it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.runtime.overview import Activity, Severity, mailbox_states, needs_attention
from mailgate.runtime.totals import totals
from mailgate.web.shell import TEMPLATES, render

# A mailbox's activity as a status colour (the words come with it: never colour alone).
ACTIVITY_STATUS = {
    Activity.IDLE: "ok",
    Activity.POLLING: "ok",
    Activity.CONNECTING: "idle",
    Activity.FAILING: "bad",
    Activity.NOT_RUNNING: "warn",
}
SEVERITY_STATUS = {Severity.ERROR: ("bad", "Error"), Severity.WARNING: ("warn", "Warning")}


async def live_values(ctx: Context) -> dict[str, Any]:
    """What the live part of the dashboard shows, read now."""
    mailboxes = await mailbox_states(ctx)
    return {
        "attention": await needs_attention(ctx),
        "mailboxes": mailboxes,
        "totals": await totals(ctx),
        "activity_status": ACTIVITY_STATUS,
        "severity_status": SEVERITY_STATUS,
        "some_not_running": any(m.activity == Activity.NOT_RUNNING for m in mailboxes),
    }


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        values = {"title": "Dashboard", **await live_values(ctx)}
        return await render(request, ctx, "dashboard.html", values)

    @routes.get("/dashboard/live", include_in_schema=False)
    async def live(request: Request) -> Response:
        # Not `render`: a refresh must not take the one-time message meant for the page.
        return TEMPLATES.TemplateResponse(request, "dashboard_live.html", await live_values(ctx))

    return routes
