"""The inbound pipeline's entry: a fetched message is recorded exactly once.

`take` commits, in one transaction, the message's receipt, the mailbox's UID state and what the
message becomes in the tracker (`handle`). Only after that commit does the
mailbox loop run the post-action (seen, delete, move), and then `post_action_done` marks it — so
a crash at any point either repeats nothing or repeats only the post-action.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.context import Context
from mailgate.inbound.handle import Destination, handle
from mailgate.store.models import Mailbox, Receipt

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
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = re.search(rb"(?im)^message-id:\s*<?([^>\s]+)>?", head)
    return match.group(1).decode("utf-8", "replace") if match else None


@dataclass(frozen=True)
class Taken:
    receipt_id: int
    new: bool  # False: this message was taken before (nothing was done again)
    status: str = "received"  # created, commented, ignored, duplicate, quarantined, received


@dataclass(frozen=True)
class Incoming:
    """One message to take: where it is, its bytes, and (ingest) where it came from."""

    ref: MessageRef
    raw: bytes
    origin: str | None = None


async def take(
    ctx: Context,
    mailbox_id: int | None,
    ref: MessageRef,
    raw: bytes,
    *,
    destination: Destination | None = None,
    origin: str | None = None,
) -> Taken:
    """Record `raw` once, and what it becomes, in one transaction. A message seen again (same
    place, or same content after a UIDVALIDITY change, or the same file ingested twice) is not
    taken twice. A message mailgate cannot process is quarantined with the reason, its bytes
    kept, never lost."""
    [taken] = await take_many(
        ctx, mailbox_id, [Incoming(ref, raw, origin)], destination=destination
    )
    return taken


async def take_many(
    ctx: Context,
    mailbox_id: int | None,
    messages: list[Incoming],
    *,
    destination: Destination | None = None,
) -> list[Taken]:
    """`take` for several messages in one transaction (one commit: the hot path of ingest).
    Each message runs in its own savepoint, so one that fails is quarantined alone."""
    results: list[Taken] = []
    async with ctx.db.session() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id) if mailbox_id is not None else None
        for message in messages:
            results.append(await _take_one(ctx, session, mailbox, mailbox_id, message, destination))
    return results


async def _take_one(
    ctx: Context,
    session: AsyncSession,
    mailbox: Mailbox | None,
    mailbox_id: int | None,
    message: Incoming,
    destination: Destination | None,
) -> Taken:
    ref, raw = message.ref, message.raw
    digest = hashlib.sha256(raw).hexdigest()
    message_id = message_id_of(raw)
    existing = await _existing(session, mailbox_id, ref, digest, destination, message_id)
    if mailbox is not None and ref.advance:
        _advance(mailbox, ref)
    if existing is not None:
        return Taken(existing.id, new=False, status=existing.status)
    receipt = Receipt(
        mailbox_id=mailbox_id,
        origin=message.origin,
        uidvalidity=ref.uidvalidity,
        uid=ref.uid,
        uidl=ref.uidl,
        message_id=message_id,
        sha256=digest,
        size=len(raw),
        status="received",
        raw=raw,
        received_at=ctx.clock(),
        project=destination.project if destination else None,
    )
    session.add(receipt)
    await session.flush()
    if destination is not None:
        try:
            async with session.begin_nested():
                await handle(session, receipt, destination)
        except Exception as exc:  # any failure of one message must not stop the mailbox
            # The savepoint's rollback expired the receipt: load it again before touching it.
            await session.refresh(receipt)
            log.exception("message quarantined", receipt=receipt.id)
            receipt.status = "quarantined"
            receipt.reason = f"mailgate could not process it ({type(exc).__name__}: {exc})"
            receipt.issue_id = None
    if mailbox is not None:
        mailbox.processed += 1
        if receipt.status == "quarantined":
            mailbox.quarantined += 1
    return Taken(receipt.id, new=True, status=receipt.status)


async def quarantine(
    ctx: Context,
    mailbox_id: int,
    ref: MessageRef,
    size: int,
    reason: str,
    *,
    status: str = "quarantined",
) -> Taken:
    """Record a message that is not taken (too large …; or "skipped": there before the mailbox
    was added), with the reason; it stays on the server."""
    async with ctx.db.session() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id, with_for_update=True)
        assert mailbox is not None
        existing = await _existing(session, mailbox_id, ref, None)
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
        await session.flush()
        if status == "quarantined":
            mailbox.quarantined += 1
        return Taken(receipt.id, new=True)


def _advance(mailbox: Mailbox, ref: MessageRef) -> None:
    if ref.uid is not None:
        mailbox.uidvalidity = ref.uidvalidity
        mailbox.last_uid = max(mailbox.last_uid or 0, ref.uid)


async def _existing(
    session: AsyncSession,
    mailbox_id: int | None,
    ref: MessageRef,
    digest: str | None,
    destination: Destination | None = None,
    message_id: str | None = None,
) -> Receipt | None:
    if mailbox_id is None:
        # Ingested files: the same bytes for the same project were taken already.
        project = destination.project if destination else None
        return (
            await session.scalars(
                select(Receipt)
                .where(
                    Receipt.mailbox_id.is_(None),
                    Receipt.project == project,
                    Receipt.sha256 == digest,
                )
                .limit(1)
            )
        ).first()
    same_place = (
        (Receipt.uidvalidity == ref.uidvalidity) & (Receipt.uid == ref.uid)
        if ref.uid is not None
        else Receipt.uidl == ref.uidl
    )
    condition = or_(same_place, Receipt.sha256 == digest) if digest else same_place
    if message_id:
        # The same message renumbered (a UIDVALIDITY change) with other bytes (a header added).
        condition = or_(condition, Receipt.message_id == message_id)
    return (
        await session.scalars(
            select(Receipt).where(Receipt.mailbox_id == mailbox_id, condition).limit(1)
        )
    ).first()


async def post_action_done(ctx: Context, receipt_id: int) -> None:
    async with ctx.db.session() as session, session.begin():
        receipt = await session.get(Receipt, receipt_id)
        if receipt is not None:
            receipt.post_action_done_at = ctx.clock()


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
