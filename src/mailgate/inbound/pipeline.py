"""The inbound pipeline's entry: a fetched message is recorded exactly once.

`take` commits, in one transaction, the message's receipt and the mailbox's UID state (and,
through `Handler`, what the message becomes in the tracker). Only after that commit does the
mailbox loop run the post-action (seen, delete, move), and then `post_action_done` marks it — so
a crash at any point either repeats nothing or repeats only the post-action.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.context import Context
from mailgate.store.models import Mailbox, Receipt


@dataclass(frozen=True)
class MessageRef:
    """Where a message is in its mailbox: IMAP (UIDVALIDITY, UID) or POP3 UIDL."""

    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None


class Handler(Protocol):
    """What a message becomes (an issue, a comment); runs inside the receipt's transaction."""

    async def __call__(self, session: AsyncSession, mailbox: Mailbox, receipt: Receipt) -> None: ...


async def record_only(session: AsyncSession, mailbox: Mailbox, receipt: Receipt) -> None:
    """The handler until the tracker exists: the receipt and the raw message are the record."""


def message_id_of(raw: bytes) -> str | None:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = re.search(rb"(?im)^message-id:\s*<?([^>\s]+)>?", head)
    return match.group(1).decode("utf-8", "replace") if match else None


@dataclass(frozen=True)
class Taken:
    receipt_id: int
    new: bool  # False: this message was taken before (nothing was done again)


async def take(
    ctx: Context,
    mailbox_id: int,
    ref: MessageRef,
    raw: bytes,
    *,
    handler: Handler = record_only,
) -> Taken:
    """Record `raw` once; a message seen again (same place, or same content after a UIDVALIDITY
    change) is not taken twice."""
    digest = hashlib.sha256(raw).hexdigest()
    async with ctx.db.session() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id, with_for_update=True)
        assert mailbox is not None
        existing = await _existing(session, mailbox_id, ref, digest)
        _advance(mailbox, ref)
        if existing is not None:
            return Taken(existing.id, new=False)
        receipt = Receipt(
            mailbox_id=mailbox_id,
            uidvalidity=ref.uidvalidity,
            uid=ref.uid,
            uidl=ref.uidl,
            message_id=message_id_of(raw),
            sha256=digest,
            size=len(raw),
            status="received",
            raw=raw,
            received_at=ctx.clock(),
        )
        session.add(receipt)
        await session.flush()
        await handler(session, mailbox, receipt)
        mailbox.processed += 1
        return Taken(receipt.id, new=True)


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
    session: AsyncSession, mailbox_id: int, ref: MessageRef, digest: str | None
) -> Receipt | None:
    same_place = (
        (Receipt.uidvalidity == ref.uidvalidity) & (Receipt.uid == ref.uid)
        if ref.uid is not None
        else Receipt.uidl == ref.uidl
    )
    condition = or_(same_place, Receipt.sha256 == digest) if digest else same_place
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
