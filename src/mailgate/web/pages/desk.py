"""`/quarantine` and `/outbox` (the issues are in `pages/issues.py`), from the service functions
of `mailgate quarantine` and `mailgate outbox`, a page at a time (paged in the query, after
the id of the last one shown: hostile mail decides how long the quarantine grows).

Quarantine, for agents too: each message with why, who sent it, its mailbox and when; Retry
(once the cause is fixed), Discard (after a confirmation page, kept in the audit log) and the
raw message as an .eml download (always a file, never shown). Outbox, for admins: pending with
the last error and the next attempt, sent, dead, filtered by status; Retry on a pending or dead
message. Every action answers 303 and a message (a reload repeats nothing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import MailgateError, NotFound
from mailgate.inbound.quarantine import (
    discard,
    quarantine_page,
    raw_message,
    retry,
    show_quarantined,
)
from mailgate.outbound.outbox import outbox_message, outbox_page
from mailgate.outbound.outbox import retry as retry_outbox
from mailgate.store.vocabulary import OutboxStatus, ReceiptStatus
from mailgate.web.downloads import raw_download
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, form_values, render, whole_number

PAGE_SIZE = 50


def with_times(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """The JSON rows' ISO times as datetimes, for the pages' `when()`."""
    return [
        {**row, **{f: datetime.fromisoformat(row[f]) if row.get(f) else None for f in fields}}
        for row in rows
    ]


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    async def quarantine_view(
        request: Request, *, error: str | None = None, failed: int | None = None, status: int = 200
    ) -> Response:
        after = whole_number(request.query_params.get("after"))
        page = await quarantine_page(ctx, after=after, limit=PAGE_SIZE)
        newer = None
        if page.next_after is not None:
            newer = f"/quarantine?{urlencode({'after': page.next_after})}"
        values = {
            "title": "Quarantine",
            "messages": with_times(page.messages, "received_at"),
            "paged": after is not None,
            "newer": newer,
            "error": error,
            "failed": failed,
        }
        return await render(request, ctx, "quarantine.html", values, status_code=status)

    @routes.get("/quarantine", include_in_schema=False)
    async def quarantine(request: Request) -> Response:
        return await quarantine_view(request)

    @routes.post("/quarantine/{receipt_id}/retry", include_in_schema=False)
    async def quarantine_retry(request: Request, receipt_id: str) -> Response:
        form = await form_values(request)
        try:
            outcome = await retry(
                ctx, _receipt(receipt_id), as_comment=form.get("as_comment") == "1"
            )
        except MailgateError as error:
            return await quarantine_view(
                request, error=str(error), failed=whole_number(receipt_id), status=_status(error)
            )
        return await done(request, ctx, "/quarantine", _retried(outcome))

    @routes.get("/quarantine/{receipt_id}/discard", include_in_schema=False)
    async def quarantine_discard_form(request: Request, receipt_id: str) -> Response:
        try:
            message = await show_quarantined(ctx, _receipt(receipt_id))
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/quarantine", "The quarantine")
        values = {"title": "Discard a message", "message": with_times([message], "received_at")[0]}
        return await render(request, ctx, "quarantine_discard.html", values)

    @routes.post("/quarantine/{receipt_id}/discard", include_in_schema=False)
    async def quarantine_discard(request: Request, receipt_id: str) -> Response:
        number = whole_number(receipt_id)
        reason = (await form_values(request)).get("reason", "")
        try:
            await discard(ctx, _receipt(receipt_id), reason=reason)
        except MailgateError as error:
            return await quarantine_view(
                request, error=str(error), failed=number, status=_status(error)
            )
        return await done(
            request, ctx, "/quarantine", f"Message {number} discarded: it will not be retried."
        )

    @routes.get("/quarantine/{receipt_id}/raw", include_in_schema=False)
    async def quarantine_raw(request: Request, receipt_id: str) -> Response:
        try:
            filename, data = await raw_message(ctx, _receipt(receipt_id))
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/quarantine", "The quarantine")
        return raw_download(filename, data)

    async def outbox_view(
        request: Request, *, error: str | None = None, failed: int | None = None, status: int = 200
    ) -> Response:
        wanted = request.query_params.get("status") or None
        if wanted not in OUTBOX_STATUSES:
            wanted = None
        before = whole_number(request.query_params.get("before"))
        page = await outbox_page(ctx, status=wanted, before=before, limit=PAGE_SIZE)
        older = None
        if page.next_before is not None:
            older = f"/outbox?{urlencode({'status': wanted or '', 'before': page.next_before})}"
        values = {
            "title": "Outbox",
            "messages": with_times(page.messages, "created_at", "next_attempt_at", "accepted_at"),
            "wanted": wanted or "",
            "statuses": OUTBOX_STATUSES,
            "paged": before is not None,
            "older": older,
            "error": error,
            "failed": failed,
        }
        return await render(request, ctx, "outbox.html", values, status_code=status)

    @routes.get("/outbox", include_in_schema=False)
    async def outbox(request: Request) -> Response:
        return await outbox_view(request)

    @routes.post("/outbox/{message_id}/retry", include_in_schema=False)
    async def outbox_retry(request: Request, message_id: str) -> Response:
        number = whole_number(message_id)
        back = _back_to_outbox((await form_values(request)).get("status"))
        try:
            if number is None:
                raise NotFound(f"No outbox message {message_id}: the Outbox page lists them.")
            status = (await outbox_message(ctx, number))["status"]
            await retry_outbox(ctx, number)
        except MailgateError as error:
            return await outbox_view(
                request, error=str(error), failed=number, status=_status(error)
            )
        said = "is tried at once" if status == OutboxStatus.PENDING else "is queued again"
        return await done(request, ctx, back, f"Message {number} {said}.")

    @routes.post("/outbox/retry-dead", include_in_schema=False)
    async def outbox_retry_dead(request: Request) -> Response:
        count = await retry_outbox(ctx, None)
        back = _back_to_outbox((await form_values(request)).get("status"))
        return await done(request, ctx, back, f"{count} dead message(s) queued again.")

    return routes


OUTBOX_STATUSES = tuple(OutboxStatus)


def _receipt(receipt_id: str) -> int:
    number = whole_number(receipt_id)
    if number is None:
        raise NotFound(f"No quarantined message {receipt_id}: the Quarantine page lists them.")
    return number


def _status(error: MailgateError) -> int:
    return 404 if isinstance(error, NotFound) else 400


def _back_to_outbox(status: str | None) -> str:
    return f"/outbox?status={status}" if status in OUTBOX_STATUSES else "/outbox"


def _retried(outcome: dict[str, Any]) -> str:
    """What a retried message became, in a sentence."""
    number, status, issue = outcome["id"], outcome["status"], outcome.get("issue")
    if status == ReceiptStatus.QUARANTINED:
        return f"Message {number} is still quarantined: {outcome['reason']}"
    if status == ReceiptStatus.REFETCH:
        return f"Message {number} is fetched again at its mailbox's next poll."
    if status in (ReceiptStatus.CREATED, ReceiptStatus.COMMENTED) and issue:
        made = "a new issue" if status == ReceiptStatus.CREATED else "a comment on"
        return f"Message {number} became {made} {issue}."
    reason = f": {outcome['reason']}" if outcome.get("reason") else "."
    return f"Message {number} was taken ({status}){reason}"
