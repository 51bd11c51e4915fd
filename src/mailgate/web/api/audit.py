"""`/api/v1/audit`: who did what and when, newest first, as `mailgate audit list` shows it,
a page at a time (paged in the query: the log only grows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.tracker.audit_log import audit_page
from mailgate.web.api.common import (
    PROBLEMS,
    Cursor,
    Limit,
    Page,
    admin_only,
    encode_cursor,
)
from mailgate.web.api.shared import id_cursor


class AuditEvent(BaseModel):
    """One event as `audit list --json` shows it (never a secret's value)."""

    at: str
    actor: str
    address: str | None
    action: str
    subject: str | None
    detail: str | None


def _utc(since: datetime | None) -> datetime | None:
    if since is None:
        return None
    try:
        return since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
    except OverflowError:  # a time zone that takes it past year 1 or 9999
        raise BadInput("since is out of range: give a time between the years 1 and 9999.") from None


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(tags=["audit"], responses=PROBLEMS, dependencies=[Depends(admin_only)])

    @routes.get("/audit")
    async def audit(
        action: Annotated[
            str | None,
            Query(
                max_length=100,
                description="Only actions starting with this, e.g. `mailbox` or `user.add`.",
            ),
        ] = None,
        since: Annotated[
            datetime | None,
            Query(description="Only events from then on (ISO 8601; UTC if no zone)."),
        ] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[AuditEvent]:
        """The audit log, newest first: sign-ins, changes to integrations, credentials,
        mailboxes, SMTP servers, projects and users, retries and discards."""
        before = id_cursor(cursor)
        page = await audit_page(ctx, action=action, since=_utc(since), before=before, size=limit)
        following = encode_cursor(page.next_before) if page.next_before is not None else None
        return Page[AuditEvent](
            items=[AuditEvent(**event) for event in page.events], next=following
        )

    return routes
