"""Mailbox rows for the lease and worker tests: written straight to the table (no server behind
them), as many as a test shares out among workers."""

from __future__ import annotations

from sqlalchemy import insert, select

from mailgate.context import Context
from mailgate.store.models import Mailbox


async def add_mailbox_rows(ctx: Context, count: int, prefix: str = "box") -> list[int]:
    """`count` IMAP mailboxes named PREFIX-1 …; their ids, in order."""
    rows = [
        {
            "name": f"{prefix}-{number}",
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": 9,  # discard: nothing answers there
            "security": "none",
            "username": f"{prefix}-{number}@example.test",
            "folder": "INBOX",
            "project": "HELP",
            "handler": "create-issue",
            "after": "seen",
            "poll_seconds": 60,
            "idle": True,
            "backlog": "all",
            "max_message_bytes": 1_000_000,
            "route_options": {},
            "status": "new",
            "processed": 0,
            "quarantined": 0,
        }
        for number in range(1, count + 1)
    ]
    async with ctx.db.session() as session, session.begin():
        await session.execute(insert(Mailbox), rows)
    async with ctx.db.session() as session:
        found = await session.scalars(
            select(Mailbox.id).where(Mailbox.name.like(f"{prefix}-%")).order_by(Mailbox.id)
        )
        return list(found)


async def lease_owners(ctx: Context) -> dict[int, str | None]:
    """Each mailbox's lease owner, as the database has it now."""
    async with ctx.db.session() as session:
        rows = await session.execute(select(Mailbox.id, Mailbox.lease_owner))
        return {mailbox_id: owner for mailbox_id, owner in rows}
