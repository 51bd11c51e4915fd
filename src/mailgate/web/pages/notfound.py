"""A page for a name or key that matches nothing (`/projects/NOPE`): status 404, the service
function's own sentence, and the way back to the list."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import NotFound
from mailgate.web.shell import render


async def not_found(
    request: Request, ctx: Context, problem: NotFound, back: str, back_label: str
) -> Response:
    values = {"title": "Not found", "problem": str(problem), "back": back, "back_label": back_label}
    return await render(request, ctx, "not_found.html", values, status_code=404)
