"""The inbound pipeline's entry: a fetched message is recorded exactly once.

`take` commits, in one transaction, the message's receipt, the mailbox's UID state and what the
message becomes in the tracker (`handle`). Only after that commit does the
mailbox loop run the post-action (seen, delete, move), and then `post_action_done` marks it — so
a crash at any point either repeats nothing or repeats only the post-action.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import bindparam, delete, func, insert, select, union_all, update
from sqlalchemy.orm import Session

from mailgate import metrics
from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.inbound import observe
from mailgate.inbound.handle import RECEIPTS, Destination, Outcome, handle
from mailgate.inbound.parse import InboundMessage
from mailgate.inbound.parsers import Unparsable, parse_all
from mailgate.store import db
from mailgate.store.models import Mailbox, Receipt
from mailgate.store.vocabulary import ReceiptStatus
from mailgate.tracker import events, notify, service
from mailgate.unit import Unit

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MessageRef:
    """Where a message is in its mailbox: IMAP (UIDVALIDITY, UID) or POP3 UIDL."""

    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None
    # False while a backlog is taken: the UID state is set once the whole backlog is done, so
    # an interrupted backlog is taken again (what was taken is recognised) instead of skipped.
    advance: bool = True


def message_id_of(raw: bytes) -> str | None:
    ends = [found for found in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if found >= 0]
    head = raw[: min(ends)] if ends else raw  # the header block, without copying the body
    match = _MESSAGE_ID.search(head)
    # As long as the thread index keeps (a longer one is not a real Message-ID anyway).
    return match.group(1)[:998].decode("utf-8", "replace") if match else None


_MESSAGE_ID = re.compile(rb"(?im)^message-id:\s*<?([^>\s]+)>?")


@dataclass(frozen=True)
class Taken:
    receipt_id: int
    new: bool  # False: this message was taken before (nothing was done again)
    status: str = ReceiptStatus.RECEIVED  # a `ReceiptStatus` (as the database gave it)
    post_action: str | None = None  # the message's own post-action ("delete"), else the mailbox's
    issue_id: int | None = None  # the issue it made or was added to
    issue: str | None = None  # that issue's key (SUP-7), for the log line


@dataclass(frozen=True)
class Incoming:
    """One message to take: where it is, its bytes, and (ingest) where it came from."""

    ref: MessageRef
    raw: bytes
    origin: str | None = None
    # Parsed ahead (`prepare`), outside any transaction; None: not parsed (taken before).
    parsed: InboundMessage | Unparsable | None = None
    # What recognises the message (computed once when not given; kept by dataclasses.replace).
    digest: str = ""
    message_id: str | None = None

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", hashlib.sha256(self.raw).hexdigest())
            object.__setattr__(self, "message_id", message_id_of(self.raw))


async def take(
    ctx: Context,
    mailbox_id: int | None,
    ref: MessageRef,
    raw: bytes,
    *,
    destination: Destination | None = None,
    origin: str | None = None,
    seen_at: datetime | None = None,
) -> Taken:
    """Record `raw` once, and what it becomes, in one transaction. A message seen again (same
    place, or same content after a UIDVALIDITY change, or the same file ingested twice) is not
    taken twice. A message mailgate cannot process is quarantined with the reason, its bytes
    kept, never lost."""
    [taken] = await take_many(
        ctx, mailbox_id, [Incoming(ref, raw, origin)], destination=destination, seen_at=seen_at
    )
    return taken


async def take_many(
    ctx: Context,
    mailbox_id: int | None,
    messages: list[Incoming],
    *,
    destination: Destination | None = None,
    seen_at: datetime | None = None,
) -> list[Taken]:
    """`take` for several messages in one transaction (one commit: the hot path of ingest and of
    a mailbox's batches). A message that fails is quarantined alone: the batch is first tried
    as one transaction, and when any message raises, it is rolled back and taken again with a
    savepoint per message. `seen_at`: when the mailbox loop found them (for the latency)."""
    mailbox_name = ""  # for the metrics and the log lines; ingested files come through none

    def take_all(unit: Unit, messages: list[Incoming], savepoints: bool) -> list[Taken]:
        nonlocal mailbox_name
        # Workers write at once on PostgreSQL: one Message-ID, or one file ingested twice, is
        # taken by one transaction at a time, the next finding it taken.
        db.serialize(unit.session, [c for m in messages for c in _claims(m, mailbox_id)])
        mailbox = unit.session.get(Mailbox, mailbox_id) if mailbox_id is not None else None
        mailbox_name = mailbox.name if mailbox is not None else ""
        taken = [
            _take_one(unit, mailbox, mailbox_id, message, destination, savepoints)
            for message in messages
        ]
        keys = observe.issue_keys(unit.session, [t.issue_id for t in taken if t.new])
        return [replace(t, issue=keys[t.issue_id]) if t.issue_id in keys else t for t in taken]

    messages = await prepare(ctx, mailbox_id, messages, destination)
    for round_ in itertools.count():
        try:
            try:
                taken = await Unit.run(ctx, take_all, messages, False)
            except _Failed:
                taken = await Unit.run(ctx, take_all, messages, True)
        except _NotParsed:
            # Known when `prepare` looked, unknown now (its receipt was removed meanwhile):
            # parse what is unknown now — never inside the transaction, never what is still
            # known (a poison message is not parsed again) — and take the batch again. Should
            # the two looks keep disagreeing, what is not parsed is parsed: the loop ends.
            if round_ < 2:
                messages = await prepare(ctx, mailbox_id, messages, destination)
            else:
                messages = await _parse(ctx, messages, [m.parsed is None for m in messages])
        else:
            now = ctx.clock()
            for message, result in zip(messages, taken, strict=True):
                if result.new:
                    waited = now - seen_at if seen_at is not None else None
                    observe.taken(
                        mailbox_name,
                        result.receipt_id,
                        message_id=message.message_id,
                        status=result.status,
                        issue=result.issue,
                        waited=waited,
                    )
            return taken
    raise AssertionError("unreachable")


async def prepare(
    ctx: Context,
    mailbox_id: int | None,
    messages: list[Incoming],
    destination: Destination | None,
) -> list[Incoming]:
    """The messages with what must be parsed parsed: those not taken before. Parsing happens
    here, in the parsing processes with their limits, before any transaction begins — a slow
    message never holds the database's write lock. Callers that fetch ahead call this ahead,
    so the next batch is parsed while one is written."""
    if destination is None:
        return messages
    todo = [message.parsed is None for message in messages]
    if not any(todo):
        return messages
    known = await _known(ctx, mailbox_id, messages, destination)
    return await _parse(ctx, messages, [t and not k for t, k in zip(todo, known, strict=True)])


async def _parse(ctx: Context, messages: list[Incoming], wanted: list[bool]) -> list[Incoming]:
    # The same bytes twice in a batch (a sender's copies, or a poison message sent a hundred
    # times) are parsed once: a copy costs nothing more.
    distinct = list(dict.fromkeys(m.raw for m, want in zip(messages, wanted, strict=True) if want))
    parsed = dict(zip(distinct, await parse_all(ctx.parsers, distinct), strict=True))
    return [
        dataclasses.replace(message, parsed=parsed[message.raw]) if want else message
        for message, want in zip(messages, wanted, strict=True)
    ]


async def _known(
    ctx: Context, mailbox_id: int | None, messages: list[Incoming], destination: Destination
) -> list[bool]:
    """Which messages have a receipt already (a read: no write lock is taken). A receipt that
    asks for its message to be fetched again does not count: that message is taken now."""

    digests = [message.digest for message in messages]
    ids = [message.message_id for message in messages]

    def look(session: Session) -> list[bool]:
        # One statement per way of recognising a message, for the whole batch (a statement
        # per message costs more than the parse it saves).
        db = session.connection()
        if mailbox_id is None:
            given = {"project": destination.project, "digests": sorted(set(digests))}
            done = {
                row.sha256
                for row in db.execute(_INGESTED_ANY, given)
                if row.status != ReceiptStatus.REFETCH
            }
            return [digest in done for digest in digests]
        values: dict[str, object] = {
            "mailbox": mailbox_id,
            "uids": sorted({m.ref.uid for m in messages if m.ref.uid is not None}),
            "uidls": sorted({m.ref.uidl for m in messages if m.ref.uidl is not None}),
            "digests": sorted(set(digests)),
            "ids": sorted({found for found in ids if found is not None}),
        }
        rows = [
            row for row in db.execute(_TAKEN_ANY, values) if row.status != ReceiptStatus.REFETCH
        ]
        return [
            any(_same(row, m.ref, digest, found) for row in rows)
            for m, digest, found in zip(messages, digests, ids, strict=True)
        ]

    async with ctx.db.session() as session:
        return await session.run_sync(look)


def _same(row: Any, ref: MessageRef, digest: str, message_id: str | None) -> bool:
    """Whether a receipt is this message's, by the rules of `_TAKEN` (NULL equals nothing)."""
    same_place = (
        ref.uid is not None
        and ref.uidvalidity is not None
        and (row.uid, row.uidvalidity) == (ref.uid, ref.uidvalidity)
    )
    if same_place or (ref.uidl is not None and row.uidl == ref.uidl) or row.sha256 == digest:
        return True
    return (
        message_id is not None
        and row.message_id == message_id
        and None not in (row.uidvalidity, ref.uidvalidity)
        and row.uidvalidity != ref.uidvalidity
    )


def _claims(message: Incoming, mailbox_id: int | None) -> list[str]:
    ingested = [f"ingested {message.digest}"] if mailbox_id is None else []
    # The people a message may add (its sender, its Cc): two batches adding the same new
    # customers in different orders would otherwise each wait for the other's uncommitted row.
    parsed = message.parsed
    people = (parsed.from_.address, *parsed.cc) if isinstance(parsed, InboundMessage) else ()
    return [
        *ingested,
        *([f"message-id {message.message_id}"] if message.message_id else []),
        *(f"person {address.lower()}" for address in people if address),
    ]


class _Failed(Exception):
    """A message of a batch taken without savepoints raised: take the batch again with them."""


class _NotParsed(Exception):
    """A message to be handled was not parsed (see `take_many`)."""


def _take_one(
    unit: Unit,
    mailbox: Mailbox | None,
    mailbox_id: int | None,
    message: Incoming,
    destination: Destination | None,
    savepoints: bool,
) -> Taken:
    session = unit.session
    ref, raw = message.ref, message.raw
    digest, message_id = message.digest, message.message_id
    existing = _existing(session, mailbox_id, ref, digest, destination, message_id, claim=True)
    if mailbox is not None and ref.advance:
        _advance(mailbox, ref)
    if existing is not None:
        return Taken(
            existing.id, new=False, status=existing.status, post_action=existing.post_action
        )
    if destination is not None and message.parsed is None:
        raise _NotParsed
    received_at = unit.now()
    issue_id = None
    db = session.connection()
    values = {
        "mailbox_id": mailbox_id,
        "origin": message.origin,
        "uidvalidity": ref.uidvalidity,
        "uid": ref.uid,
        "uidl": ref.uidl,
        "message_id": message_id,
        "sha256": digest,
        "size": len(raw),
        "status": ReceiptStatus.RECEIVED,
        "received_at": received_at,
        "project": destination.project if destination else None,
        "sender": None,
        "reason": None,
        "issue_id": None,
        "post_action_done_at": None,
        "post_action": None,
    }
    service.keep_blob(session, digest, raw)
    receipt_id = int(db.execute(_NEW_RECEIPT, values).scalar_one())
    status, post_action = ReceiptStatus.RECEIVED, None
    if destination is not None:
        try:
            if savepoints:
                with session.begin_nested():
                    outcome = _handle(unit, receipt_id, received_at, message, destination)
            else:
                outcome = _handle(unit, receipt_id, received_at, message, destination)
        except (MailgateError, sa.exc.OperationalError):
            # The database failed (disk full, damaged, gone), not the message: nothing of the
            # batch is kept, and it is taken again once the database works.
            raise
        except Exception as exc:  # any failure of one message must not stop the mailbox
            if not savepoints:
                raise _Failed from exc
            # What the rolled-back savepoint wrote is gone: so are the ids cached from it.
            unit.reset()
            log.exception("message quarantined", message=receipt_id)
            outcome = Outcome(
                ReceiptStatus.QUARANTINED,
                f"mailgate could not process it ({type(exc).__name__}: {exc})",
            )
        status, post_action, issue_id = outcome.status, outcome.post_action, outcome.issue_id
        db.execute(
            _RECEIPT_OUTCOME,
            {
                "receipt": receipt_id,
                "new_status": outcome.status,
                "new_reason": outcome.reason,
                "new_issue_id": outcome.issue_id,
                "new_project": outcome.project or values["project"],
                "new_sender": (outcome.sender or "")[:320] or None,
                "new_post_action": outcome.post_action,
            },
        )
        if status == ReceiptStatus.QUARANTINED:
            events.message_quarantined(
                unit,
                receipt_id,
                mailbox=mailbox.name if mailbox is not None else None,
                sender=outcome.sender or _sender(message.parsed),
                reason=outcome.reason,
                project=outcome.project or destination.project,
                origin=message.origin,
            )
    if mailbox is not None:
        mailbox.processed += 1
        if status == ReceiptStatus.QUARANTINED:
            mailbox.quarantined += 1
    return Taken(receipt_id, new=True, status=status, post_action=post_action, issue_id=issue_id)


def _sender(parsed: InboundMessage | Unparsable | None) -> str | None:
    return parsed.from_.address or None if isinstance(parsed, InboundMessage) else None


def _handle(
    unit: Unit,
    receipt_id: int,
    received_at: datetime,
    message: Incoming,
    destination: Destination,
) -> Outcome:
    parsed = message.parsed
    assert parsed is not None  # `prepare` parsed it
    if isinstance(parsed, Unparsable):
        # Recorded with its bytes, and never fetched or parsed again: a poison message ends
        # here. An admin can retry it (with higher limits) once they have looked at it.
        return Outcome(ReceiptStatus.QUARANTINED, parsed.reason, project=destination.project)
    outcome = handle(unit, receipt_id, received_at, parsed, destination)
    if outcome.forward_to and outcome.project:
        notify.forward(unit, outcome.project, message.raw, outcome.forward_to, outcome.reason)
    return outcome


async def quarantine(
    ctx: Context,
    mailbox_id: int,
    ref: MessageRef,
    size: int,
    reason: str,
    *,
    status: ReceiptStatus = ReceiptStatus.QUARANTINED,
) -> Taken:
    """Record a message that is not taken (too large …; or skipped: there before the mailbox
    was added), with the reason; it stays on the server."""
    names: list[str] = []  # the mailbox's, for the metrics once committed

    def record(session: Session) -> Taken:
        mailbox = session.get(Mailbox, mailbox_id, with_for_update=True)
        assert mailbox is not None
        names[:] = [mailbox.name]
        existing = _existing(session, mailbox_id, ref, None, claim=True)
        if ref.advance:  # a backlog sets the UID state once it is all taken
            _advance(mailbox, ref)
        if existing is not None:
            return Taken(existing.id, new=False)
        receipt = Receipt(
            mailbox_id=mailbox_id,
            uidvalidity=ref.uidvalidity,
            uid=ref.uid,
            uidl=ref.uidl,
            sha256="",
            size=size,
            status=status,
            reason=reason,
            received_at=ctx.clock(),
            # Quarantined mail is left where it is: there is no post-action to do.
            post_action_done_at=ctx.clock(),
        )
        session.add(receipt)
        session.flush()
        if status == ReceiptStatus.QUARANTINED:
            mailbox.quarantined += 1
            events.message_quarantined(
                Unit(session, ctx.clock),
                receipt.id,
                mailbox=mailbox.name,
                sender=None,
                reason=reason,
            )
        return Taken(receipt.id, new=True)

    taken = await ctx.db.run(record)
    if taken.new and status == ReceiptStatus.QUARANTINED:
        metrics.message_taken(names[0], quarantined=True)
    return taken


def _advance(mailbox: Mailbox, ref: MessageRef) -> None:
    if ref.uid is not None:
        mailbox.uidvalidity = ref.uidvalidity
        mailbox.last_uid = max(mailbox.last_uid or 0, ref.uid)


def _existing(
    session: Session,
    mailbox_id: int | None,
    ref: MessageRef,
    digest: str | None,
    destination: Destination | None = None,
    message_id: str | None = None,
    *,
    claim: bool = False,
) -> Any:
    """(id, status, post_action) of this message's receipt, if it was taken before: the same place, or the
    same bytes, or the same Message-ID renumbered (a UIDVALIDITY change) with other bytes (a
    header added). Ingested files: the same bytes for the same project.

    `claim`, in the transaction that records the message: a receipt that asked for it to be
    fetched again is dropped here, and the look repeated. Here, not when the poll began: a
    poll that fails before this commit must not forget the message (its UID is below the
    mailbox's last one; only that receipt brings it back)."""
    db = session.connection()
    if mailbox_id is None:
        project = destination.project if destination else None
        return db.execute(_INGESTED, {"project": project, "sha256": digest}).first()
    # Absent values are NULL, and NULL equals nothing: one statement serves every case.
    place = {"uidvalidity": ref.uidvalidity, "uid": ref.uid, "uidl": ref.uidl}
    values = {"mailbox": mailbox_id, **place, "sha256": digest, "message_id": message_id}
    found = db.execute(_TAKEN, values).first()
    if claim and found is not None and found.status == ReceiptStatus.REFETCH:
        db.execute(delete(RECEIPTS).where(RECEIPTS.c.id == found.id))
        found = db.execute(_TAKEN, values).first()
    return found


_NEW_RECEIPT = insert(RECEIPTS).returning(RECEIPTS.c.id)
_RECEIPT_OUTCOME = (
    update(RECEIPTS)
    .where(RECEIPTS.c.id == bindparam("receipt"))
    .values(
        status=bindparam("new_status"),
        reason=bindparam("new_reason"),
        issue_id=bindparam("new_issue_id"),
        project=bindparam("new_project"),
        sender=bindparam("new_sender"),
        post_action=bindparam("new_post_action"),
    )
)
_INGESTED = (
    select(RECEIPTS.c.id, RECEIPTS.c.status, RECEIPTS.c.post_action)
    .where(
        RECEIPTS.c.mailbox_id.is_(None),
        RECEIPTS.c.project == bindparam("project"),
        RECEIPTS.c.sha256 == bindparam("sha256"),
    )
    .limit(1)
)


_INGESTED_ANY = select(RECEIPTS.c.sha256, RECEIPTS.c.status).where(
    RECEIPTS.c.mailbox_id.is_(None),
    RECEIPTS.c.project == bindparam("project"),
    RECEIPTS.c.sha256.in_(bindparam("digests", expanding=True)),
)


def _taken_by_any(condition: sa.ColumnElement[bool]) -> sa.Select[Any]:
    columns = (RECEIPTS.c.uidvalidity, RECEIPTS.c.uid, RECEIPTS.c.uidl, RECEIPTS.c.sha256)
    return select(*columns, RECEIPTS.c.message_id, RECEIPTS.c.status).where(
        RECEIPTS.c.mailbox_id == bindparam("mailbox"), condition
    )


# `_TAKEN` for a whole batch: the receipts any of its messages could be (matched in Python).
_TAKEN_ANY = union_all(
    _taken_by_any(RECEIPTS.c.uid.in_(bindparam("uids", expanding=True))),
    _taken_by_any(RECEIPTS.c.uidl.in_(bindparam("uidls", expanding=True))),
    _taken_by_any(RECEIPTS.c.sha256.in_(bindparam("digests", expanding=True))),
    _taken_by_any(RECEIPTS.c.message_id.in_(bindparam("ids", expanding=True))),
)


def _taken_by(*conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return select(RECEIPTS.c.id, RECEIPTS.c.status, RECEIPTS.c.post_action).where(
        RECEIPTS.c.mailbox_id == bindparam("mailbox"), *conditions
    )


# Each way of recognising a message on its own index (an OR of them scans the mailbox's
# receipts: quadratic over a backlog).
_TAKEN = union_all(
    _taken_by(
        RECEIPTS.c.uidvalidity == bindparam("uidvalidity"), RECEIPTS.c.uid == bindparam("uid")
    ),
    _taken_by(RECEIPTS.c.uidl == bindparam("uidl")),
    _taken_by(RECEIPTS.c.sha256 == bindparam("sha256")),
    # The same message renumbered by the server (a new UIDVALIDITY) with other bytes (a header
    # added): only across UIDVALIDITYs — two copies of one Message-ID in one folder (a list's
    # copy and the direct one) are two messages.
    _taken_by(
        RECEIPTS.c.message_id == bindparam("message_id"),
        RECEIPTS.c.uidvalidity != bindparam("uidvalidity"),
    ),
).limit(1)


async def post_actions_done(ctx: Context, receipt_ids: list[int]) -> None:
    if not receipt_ids:
        return
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(RECEIPTS)
            .where(RECEIPTS.c.id.in_(receipt_ids), RECEIPTS.c.post_action_done_at.is_(None))
            .values(post_action_done_at=ctx.clock())
        )


async def pending_post_actions(ctx: Context, mailbox_id: int) -> list[Receipt]:
    """Messages committed whose post-action a crash interrupted, oldest first."""
    async with ctx.db.session() as session:
        return list(
            (
                await session.scalars(
                    select(Receipt)
                    .where(Receipt.mailbox_id == mailbox_id, Receipt.post_action_done_at.is_(None))
                    .order_by(Receipt.id)
                )
            ).all()
        )


async def counts(ctx: Context, mailbox_id: int) -> dict[str, int]:
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(Receipt.status, func.count())
                .where(Receipt.mailbox_id == mailbox_id)
                .group_by(Receipt.status)
            )
        ).all()
    return {str(status): int(n) for status, n in rows}
