"""`/api/v1/quarantine`: messages mailgate took but held back, as `mailgate quarantine` lists
and retries them; their raw bytes; and discarding one for good. Open to agents as well as
admins (an agent accepts a message held for them as a comment). Paged in the query, oldest
first, after the id the cursor names (hostile mail decides how many there are)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from mailgate.context import Context
from mailgate.inbound.quarantine import MAX_REASON, discard, quarantine_page, raw_message, retry
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, encode_cursor
from mailgate.web.api.shared import Body, Id, id_cursor
from mailgate.web.downloads import raw_download

RAW: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The message as it came from the mail server (RFC 5322), as a file.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class QuarantinedMessage(BaseModel):
    """A quarantined message as `quarantine list --json` shows it."""

    id: int
    mailbox: str | None
    origin: str | None = Field(description="Where an ingested message came from.")
    sender: str | None
    project: str | None
    message_id: str | None
    size: int
    reason: str | None = Field(description="Why it was held back.")
    issue: str | None = Field(description="The issue a message held for an agent is about.")
    received_at: str
    kept: bool = Field(description="Whether mailgate has its bytes (false: never fetched).")


class Retry(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"as_comment": False}]})

    as_comment: bool = Field(
        default=False,
        description="Accept a message held for an agent as a comment on its issue.",
    )


class Retried(BaseModel):
    id: int
    status: str = Field(
        description="What it became: created, commented, ignored, … quarantined again, or "
        "refetch (fetched again at the mailbox's next poll)."
    )
    reason: str | None
    issue: str | None = None


class Discard(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "spam"}]})

    reason: str | None = Field(
        default=None, max_length=MAX_REASON, description="Why, for the audit log."
    )


class Discarded(BaseModel):
    id: int
    status: str
    reason: str | None


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(prefix="/quarantine", tags=["quarantine"], responses=PROBLEMS)

    @routes.get("")
    async def quarantined(cursor: Cursor = None, limit: Limit = 50) -> Page[QuarantinedMessage]:
        """Quarantined messages, oldest first, each with why."""
        page = await quarantine_page(ctx, after=id_cursor(cursor), limit=limit)
        following = encode_cursor(page.next_after) if page.next_after is not None else None
        return Page[QuarantinedMessage](
            items=[QuarantinedMessage(**message) for message in page.messages], next=following
        )

    @routes.get("/{receipt_id}/raw", response_class=Response, responses=RAW)
    async def raw(receipt_id: Id) -> Response:
        """Download the message (.eml) to look at it: always a file, never shown inline."""
        filename, data = await raw_message(ctx, receipt_id)
        return raw_download(filename, data)

    @routes.post("/{receipt_id}/retry")
    async def retry_message(receipt_id: Id, given: Retry | None = None) -> Retried:
        """Run the message through the pipeline again once its cause is fixed
        (`mailgate quarantine retry`); its `status` says what it became."""
        as_comment = given.as_comment if given is not None else False
        return Retried(**await retry(ctx, receipt_id, as_comment=as_comment))

    @routes.post("/{receipt_id}/discard")
    async def discard_message(receipt_id: Id, given: Discard | None = None) -> Discarded:
        """Give up on the message for good: never retried; the audit log keeps who, its sender
        and why."""
        reason = given.reason if given is not None else None
        return Discarded(**await discard(ctx, receipt_id, reason=reason))

    return routes
