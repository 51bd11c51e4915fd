"""`/audit`: the audit log, newest first — filtered by what the action starts with ("user.",
"mailbox.set") and a first day, a page at a time (a cursor, so a page stays the same however
many events come meanwhile). The same log as `mailgate audit list`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.tracker.audit_log import audit_page
from mailgate.web.shell import render, whole_number

PAGE_SIZE = 100
# What the action filter suggests: each kind of thing the log records.
ACTION_PREFIXES = ("user.", "integration.", "credential.", "mailbox.", "smtp.", "project.")


def _since(value: str) -> datetime | None:
    """The first day shown, from the form's date field (midnight UTC); None when empty.
    Raises ValueError for a value that is no date."""
    if not value:
        return None
    return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/audit", include_in_schema=False)
    async def audit(request: Request) -> Response:
        query = request.query_params
        action = query.get("action", "").strip()
        since_text = query.get("since", "").strip()
        before_text = query.get("before", "")
        values: dict[str, object] = {
            "title": "Audit log",
            "action": action,
            "since": since_text,
            "prefixes": ACTION_PREFIXES,
        }
        try:
            since = _since(since_text)
        except ValueError:
            values["error"] = f"{since_text!r} is not a date: use the form YYYY-MM-DD."
            return await render(request, ctx, "audit.html", values, status_code=400)
        before = whole_number(before_text)
        page = await audit_page(ctx, action=action, since=since, before=before, size=PAGE_SIZE)
        filters = {k: v for k, v in (("action", action), ("since", since_text)) if v}
        older = (
            "/audit?" + urlencode({**filters, "before": page.next_before})
            if page.next_before is not None
            else None
        )
        newest = ("/audit?" + urlencode(filters)) if before is not None else None
        events = [{**event, "at": datetime.fromisoformat(event["at"])} for event in page.events]
        values.update(events=events, older=older, newest=newest, filtered=bool(filters))
        return await render(request, ctx, "audit.html", values)

    return routes
