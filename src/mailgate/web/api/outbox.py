"""`/api/v1/outbox`: the notifications mailgate sends, as `mailgate outbox` lists and retries
them, newest first and paged in the query (the outbox only grows)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from mailgate.context import Context
from mailgate.outbound.outbox import outbox_message, outbox_page, retry
from mailgate.web.api.common import (
    PROBLEMS,
    Cursor,
    Limit,
    Page,
    admin_only,
    encode_cursor,
)
from mailgate.web.api.shared import Id, id_cursor


class OutboxMessage(BaseModel):
    """A message as `outbox list --json` shows it."""

    id: int
    kind: str = Field(description="acknowledgement, comment, alert, …")
    issue: str | None
    smtp: str | None = Field(description="The SMTP server it goes out through.")
    to: list[str]
    subject: str
    message_id: str
    status: str = Field(description="pending, sent or dead (given up on: retry it).")
    attempts: int
    next_attempt_at: str | None = Field(description="When a pending message is tried next.")
    last_error: str | None
    created_at: str
    accepted_at: str | None = Field(description="When the SMTP server accepted it.")


class Queued(BaseModel):
    queued: int = Field(description="1: the message is tried at once.")
    message: OutboxMessage


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/outbox", tags=["outbox"], responses=PROBLEMS, dependencies=[Depends(admin_only)]
    )

    @routes.get("")
    async def outbox(
        status: Annotated[
            Literal["pending", "sent", "dead"] | None, Query(description="Only these.")
        ] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[OutboxMessage]:
        """Notifications, newest first: pending (with the last error and the next attempt),
        sent, dead."""
        before = id_cursor(cursor)
        page = await outbox_page(ctx, status=status, before=before, limit=limit)
        following = encode_cursor(page.next_before) if page.next_before is not None else None
        return Page[OutboxMessage](
            items=[OutboxMessage(**message) for message in page.messages], next=following
        )

    @routes.post("/{message_id}/retry")
    async def retry_message(message_id: Id) -> Queued:
        """Send a dead message again once what refused it is fixed, or try a pending one now
        (`mailgate outbox retry`)."""
        count = await retry(ctx, message_id)
        return Queued(queued=count, message=OutboxMessage(**await outbox_message(ctx, message_id)))

    return routes
