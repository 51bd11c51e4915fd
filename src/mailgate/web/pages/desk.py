"""`/quarantine`, `/outbox`: read-only lists, a page at a time, from the service functions of
`mailgate quarantine list` and `outbox list` (the issues are in `pages/issues.py`). The agents'
desk, where they act on these, comes later; until then the navigation leads somewhere real."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.inbound.quarantine import list_quarantine
from mailgate.outbound.outbox import list_outbox
from mailgate.web.shell import render, whole_number

PAGE_SIZE = 50


@dataclass(frozen=True)
class Pager:
    page: int
    pages: int
    total: int
    path: str

    @property
    def newer(self) -> str | None:
        return f"{self.path}?page={self.page - 1}" if self.page > 1 else None

    @property
    def older(self) -> str | None:
        return f"{self.path}?page={self.page + 1}" if self.page < self.pages else None


def one_page(
    request: Request, rows: Sequence[dict[str, Any]], size: int = PAGE_SIZE
) -> tuple[list[dict[str, Any]], Pager]:
    """The rows of the page `?page=N` asks for (the first when it asks for none or nonsense)."""
    pages = max(1, -(-len(rows) // size))
    asked = request.query_params.get("page", "1")
    page = min(max(1, whole_number(asked) or 1), pages)
    shown = list(rows[(page - 1) * size : page * size])
    return shown, Pager(page, pages, len(rows), request.url.path)


def with_times(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """The JSON rows' ISO times as datetimes, for the pages' `when()`."""
    return [
        {**row, **{f: datetime.fromisoformat(row[f]) if row.get(f) else None for f in fields}}
        for row in rows
    ]


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/quarantine", include_in_schema=False)
    async def quarantine(request: Request) -> Response:
        shown, pager = one_page(request, await list_quarantine(ctx))
        values = {
            "title": "Quarantine",
            "messages": with_times(shown, "received_at"),
            "pager": pager,
        }
        return await render(request, ctx, "quarantine.html", values)

    @routes.get("/outbox", include_in_schema=False)
    async def outbox(request: Request) -> Response:
        newest_first = list(reversed(await list_outbox(ctx)))
        shown, pager = one_page(request, newest_first)
        values = {
            "title": "Outbox",
            "messages": with_times(shown, "created_at", "next_attempt_at", "accepted_at"),
            "pager": pager,
        }
        return await render(request, ctx, "outbox.html", values)

    return routes
