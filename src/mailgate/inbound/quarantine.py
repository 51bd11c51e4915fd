"""Quarantined messages: listed with their reason, retried once the cause is fixed — and the
mail held for an agent (a stranger's reply, an auto-reply loop), which an agent accepts as a
comment on its issue (`quarantine retry ID --as-comment`) — read whole (`raw_message`, the
.eml download), or discarded for good (`discard`). Retries and discards are in the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.inbound.handle import Destination, accept_as_comment, handle
from mailgate.inbound.mailboxes import destination_of
from mailgate.inbound.parse import InboundMessage
from mailgate.inbound.parsers import Unparsable, parse_one
from mailgate.inbound.route import RouteOptions
from mailgate.store import audit
from mailgate.store.models import Blob, Issue, Mailbox, Project, Receipt
from mailgate.store.vocabulary import ReceiptStatus
from mailgate.tracker import notify, service
from mailgate.unit import Unit

MAX_REASON = 500
HEAD_BYTES = 16 * 1024  # where a message's From header is looked for
LIST_PAGE = 500  # messages read at a time for the whole list


@dataclass(frozen=True)
class QuarantinePage:
    """Quarantined messages, oldest first, and the id the next page starts after (None on the
    last)."""

    messages: list[dict[str, Any]]
    next_after: int | None


async def quarantine_page(
    ctx: Context, *, after: int | None = None, limit: int = 50
) -> QuarantinePage:
    """Quarantined messages a page at a time for the Quarantine page and the API: oldest first,
    those after the id `after` names, at most `limit`, each with the reason and the issue a
    held one is about. Paged in the query (hostile mail decides how many there are), and the
    cursor is an id, not a position: a message retried or discarded meanwhile does not move the
    next page."""
    if limit < 1:
        raise BadInput(f"A page holds at least one message, not {limit}.")

    def read(session: Session) -> QuarantinePage:
        query = _quarantined_rows().limit(limit + 1)
        if after is not None:
            query = query.where(Receipt.id > after)
        rows = session.execute(query).all()
        views = _views(session, rows[:limit])
        more = len(rows) > limit
        return QuarantinePage(views, views[-1]["id"] if more else None)

    return await ctx.db.read(read)


async def list_quarantine(ctx: Context) -> list[dict[str, Any]]:
    """Every quarantined message, oldest first, as `quarantine_page` shows them (read a page
    at a time, for `mailgate quarantine list`)."""
    views: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        page = await quarantine_page(ctx, after=after, limit=LIST_PAGE)
        views.extend(page.messages)
        if page.next_after is None:
            return views
        after = page.next_after


async def show_quarantined(ctx: Context, receipt_id: int) -> dict[str, Any]:
    """One quarantined message as `quarantine_page` shows it; `NotFound` if it is not one."""

    def read(session: Session) -> list[dict[str, Any]]:
        return _views(session, session.execute(_quarantined_rows(receipt_id)).all())

    found = await ctx.db.read(read)
    if not found:
        raise NotFound(
            f"No quarantined message {receipt_id}: `mailgate quarantine list` shows them."
        )
    return found[0]


def _quarantined_rows(receipt_id: int | None = None) -> Select[Receipt, str, str, int]:
    query = (
        select(Receipt, Mailbox.name, Project.key, Issue.number)
        .outerjoin(Mailbox, Receipt.mailbox_id == Mailbox.id)
        .outerjoin(Issue, Receipt.issue_id == Issue.id)
        .outerjoin(Project, Issue.project_id == Project.id)
        .where(Receipt.status == ReceiptStatus.QUARANTINED)
        .order_by(Receipt.id)
    )
    return query if receipt_id is None else query.where(Receipt.id == receipt_id)


def _views(session: Session, rows: Sequence[Row[Receipt, str, str, int]]) -> list[dict[str, Any]]:
    # The sender, when the outcome did not record one (a message for a project that does not
    # exist yet …), is read from the From header of the message's first bytes: only for the
    # messages shown.
    unknown = {receipt.sha256 for receipt, *_ in rows if receipt.sender is None and receipt.sha256}
    heads: dict[str, bytes] = {}
    if unknown:
        found = session.execute(
            select(Blob.sha256, func.substr(Blob.data, 1, HEAD_BYTES)).where(
                Blob.sha256.in_(unknown)
            )
        )
        heads = {sha256: head for sha256, head in found}
    return [
        {
            "id": receipt.id,
            "mailbox": name,
            "origin": receipt.origin,
            "sender": receipt.sender or sender_of(heads.get(receipt.sha256)),
            "project": receipt.project,
            "message_id": receipt.message_id,
            "size": receipt.size,
            "reason": receipt.reason,
            "issue": f"{key}-{number}" if key else None,
            "received_at": receipt.received_at.isoformat(),
            "kept": bool(receipt.sha256),
        }
        for receipt, name, key, number in rows
    ]


def sender_of(head: bytes | None) -> str | None:
    """The address in the From header of a message's first bytes (None if there is none)."""
    if not head:
        return None
    headers = BytesHeaderParser(policy=compat32).parsebytes(head, headersonly=True)
    _, address = parseaddr(str(headers.get("From", "")))
    return address.strip().lower()[:320] or None


@dataclass(frozen=True)
class _Held:
    """A quarantined message as read in the first transaction of a retry."""

    receipt_id: int
    raw: bytes
    destination: Destination


async def retry(ctx: Context, receipt_id: int, *, as_comment: bool = False) -> dict[str, Any]:
    """Run a quarantined message through the pipeline again; its receipt shows the outcome.
    `as_comment`: an agent accepts a message held for them as a comment on its issue.

    In three steps, so that parsing never holds the database's write lock: read the receipt
    and the message (one transaction), parse (in a parsing process, with its deadline and
    memory limit, outside any transaction), then handle it in a second transaction that first
    checks the message is still quarantined (another retry may have been first)."""
    held = await ctx.db.run(_read, receipt_id, as_comment, ctx.clock())
    if not isinstance(held, _Held):
        return held  # not fetched yet: it will be at the next poll
    message = await parse_one(ctx.parsers, held.raw)
    if isinstance(message, Unparsable):
        reason = message.reason
        status = ReceiptStatus.QUARANTINED
        outcome = {"id": held.receipt_id, "status": status, "reason": reason, "issue": None}
        await ctx.db.run(lambda session: _audit_retry(session, ctx.clock(), outcome))
        return outcome
    return await Unit.run(ctx, _handle_again, held, message, as_comment)


def _audit_retry(session: Session, at: datetime, outcome: dict[str, Any]) -> None:
    became = str(outcome["status"]) + (f" {outcome['issue']}" if outcome.get("issue") else "")
    detail = became + (f": {outcome['reason']}" if outcome.get("reason") else "")
    audit.record(session, at, "quarantine.retry", f"message {outcome['id']}", detail)


def _read(
    session: Session, receipt_id: int, as_comment: bool, at: datetime
) -> _Held | dict[str, Any]:
    receipt = _quarantined(session, receipt_id)
    if as_comment and receipt.issue_id is None:
        raise BadInput(
            f"Message {receipt_id} names no issue it could comment on: retry it without "
            "--as-comment."
        )
    mailbox = session.get(Mailbox, receipt.mailbox_id) if receipt.mailbox_id else None
    raw = service.blob(session, receipt.sha256)
    if raw is None:
        outcome = _fetch_again(session, receipt, mailbox)
        _audit_retry(session, at, outcome)
        return outcome
    destination = (
        destination_of(mailbox)
        if mailbox is not None
        else Destination(project=receipt.project or "", options=RouteOptions())
    )
    return _Held(receipt.id, raw, destination)


def _quarantined(session: Session, receipt_id: int, *, lock: bool = False) -> Receipt:
    # Locked when it is about to be handled: two agents retrying the same message at once on
    # PostgreSQL take turns, and the second finds it no longer quarantined (SQLite's write
    # transactions take turns anyway).
    receipt = session.get(Receipt, receipt_id, with_for_update=lock, populate_existing=lock)
    if receipt is None or receipt.status != ReceiptStatus.QUARANTINED:
        raise NotFound(
            f"No quarantined message {receipt_id}: `mailgate quarantine list` shows them."
        )
    return receipt


def _fetch_again(session: Session, receipt: Receipt, mailbox: Mailbox | None) -> dict[str, Any]:
    """A message that was never fetched (too large) is fetched at the mailbox's next poll."""
    if mailbox is None:
        raise BadInput(f"Message {receipt.id} was never fetched, so it cannot be retried.")
    if receipt.size > mailbox.max_message_bytes:
        raise BadInput(
            f"Message {receipt.id} is {receipt.size} bytes, over mailbox {mailbox.name}'s "
            "limit: raise it with `mailgate mailbox set NAME --max-message-bytes N`, then "
            "retry."
        )
    mailbox.quarantined = max(0, mailbox.quarantined - 1)
    if receipt.uidl is not None:
        # POP3: without a receipt the UIDL is new again and fetched at the next poll.
        session.delete(receipt)
    else:
        # IMAP: the next poll fetches this UID before new mail (the UID state stays).
        receipt.status = ReceiptStatus.REFETCH
        receipt.reason = "to be fetched again at the next poll"
    status = ReceiptStatus.REFETCH
    return {"id": receipt.id, "status": status, "reason": "fetched again at the next poll"}


def _handle_again(
    unit: Unit, held: _Held, message: InboundMessage, as_comment: bool
) -> dict[str, Any]:
    session = unit.session
    receipt = _quarantined(session, held.receipt_id, lock=True)
    mailbox = session.get(Mailbox, receipt.mailbox_id) if receipt.mailbox_id else None
    with session.begin_nested():
        # The issue as the receipt says now, not as it was read before the parse.
        if as_comment and receipt.issue_id is not None:
            outcome = accept_as_comment(
                unit, receipt.id, message, held.destination, receipt.issue_id
            )
        else:
            outcome = handle(unit, receipt.id, receipt.received_at, message, held.destination)
        receipt.status, receipt.reason, receipt.issue_id = (
            outcome.status,
            outcome.reason,
            outcome.issue_id,
        )
        receipt.post_action = outcome.post_action
        if outcome.project:
            receipt.project, receipt.sender = (
                outcome.project,
                (outcome.sender or "")[:320] or None,
            )
        if outcome.forward_to and outcome.project:
            notify.forward(unit, outcome.project, held.raw, outcome.forward_to, outcome.reason)
    if receipt.status != ReceiptStatus.QUARANTINED and mailbox is not None:
        mailbox.quarantined = max(0, mailbox.quarantined - 1)
        # The post-action that was held back runs at the next poll.
        receipt.post_action_done_at = None
    view = {
        "id": receipt.id,
        "status": receipt.status,
        "reason": receipt.reason,
        "issue": _issue_key(session, receipt.issue_id),
    }
    _audit_retry(session, unit.now(), view)
    return view


def _issue_key(session: Session, issue_id: int | None) -> str | None:
    issue = session.get(Issue, issue_id) if issue_id is not None else None
    project = session.get(Project, issue.project_id) if issue is not None else None
    return f"{project.key}-{issue.number}" if project is not None and issue is not None else None


async def raw_message(ctx: Context, receipt_id: int) -> tuple[str, bytes]:
    """A quarantined message as it came from the server, for the .eml download: its file name
    and bytes. `NotFound` for a message that is not quarantined, or was never fetched (too
    large: it is on the mail server only)."""

    def read(session: Session) -> tuple[str, bytes]:
        receipt = _quarantined(session, receipt_id)
        raw = service.blob(session, receipt.sha256)
        if raw is None:
            raise NotFound(
                f"Message {receipt_id} was never fetched (it is over its mailbox's size limit): "
                "it is on the mail server only."
            )
        return f"message-{receipt.id}.eml", raw

    return await ctx.db.read(read)


async def discard(ctx: Context, receipt_id: int, *, reason: str | None = None) -> dict[str, Any]:
    """Give up on a quarantined message for good: it is never retried, and the audit log keeps
    who discarded it, its sender and why. Its receipt stays (status `ignored`, the reason saying
    it was discarded), so the same message is still recognised if it comes again; so do its
    bytes. A message mailgate fetched then gets its mailbox's post-action at the next poll
    (seen, moved or deleted), as ignored mail does; one never fetched stays on the server."""
    why = " ".join((reason or "").split())[:MAX_REASON]

    def mark(session: Session) -> dict[str, Any]:
        receipt = _quarantined(session, receipt_id, lock=True)
        mailbox = session.get(Mailbox, receipt.mailbox_id) if receipt.mailbox_id else None
        head = session.scalar(
            select(func.substr(Blob.data, 1, HEAD_BYTES)).where(Blob.sha256 == receipt.sha256)
        )
        sender = receipt.sender or sender_of(head) or "an unknown sender"
        receipt.status = ReceiptStatus.IGNORED
        receipt.reason = "discarded" + (f": {why}" if why else "")
        if mailbox is not None:
            mailbox.quarantined = max(0, mailbox.quarantined - 1)
            if receipt.sha256:
                receipt.post_action_done_at = None
        detail = f"from {sender}" + (f": {why}" if why else "")
        audit.record(session, ctx.clock(), "quarantine.discard", f"message {receipt.id}", detail)
        return {"id": receipt.id, "status": receipt.status, "reason": receipt.reason}

    return await ctx.db.run(mark)
