"""Mailbox leases: one process at a time reads a mailbox, on one host or many.

A lease is claimed with a conditional UPDATE (works on SQLite and PostgreSQL) and renewed by a
heartbeat; a holder that dies stops renewing, and its lease runs out within `LEASE_SECONDS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from sqlalchemy import or_, update

from mailgate.context import Context
from mailgate.errors import OperationFailed
from mailgate.store.models import Mailbox

log = structlog.get_logger(__name__)

LEASE_SECONDS = 10.0
HEARTBEAT_SECONDS = 3.0


class LeaseLost(Exception):
    """Another process took the mailbox (this one stalled past its lease)."""


async def claim(ctx: Context, mailbox_id: int, owner: str, seconds: float = LEASE_SECONDS) -> bool:
    now = ctx.clock()
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            update(Mailbox)
            .where(
                Mailbox.id == mailbox_id,
                or_(
                    Mailbox.lease_until.is_(None),
                    Mailbox.lease_until < now,
                    Mailbox.lease_owner == owner,
                ),
            )
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(ctx: Context, mailbox_id: int, owner: str) -> None:
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id, Mailbox.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


@asynccontextmanager
async def holding(
    ctx: Context, mailbox_id: int, owner: str, *, wait: float = 0.0, poll: float = 0.5
) -> AsyncIterator[None]:
    """Hold the mailbox's lease (waiting up to `wait` seconds for it), renewed by a heartbeat.
    The body is cancelled if the lease is lost."""
    waited = 0.0
    while not await claim(ctx, mailbox_id, owner):
        if waited >= wait:
            raise OperationFailed(
                "Another mailgate process is reading this mailbox: wait for it to finish, or "
                "stop it (`mailgate serve` and `mailgate worker` read every mailbox)."
            )
        await asyncio.sleep(poll)
        waited += poll
    body = asyncio.current_task()
    assert body is not None

    async def heartbeat() -> None:
        renewed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                if not await claim(ctx, mailbox_id, owner):
                    log.error("mailbox lease lost", mailbox=mailbox_id, owner=owner)
                    body.cancel()
                    return
                renewed = asyncio.get_running_loop().time()
            except Exception:  # a database blip: retry, but never hold a lease we cannot renew
                log.exception("mailbox lease renewal failed", mailbox=mailbox_id)
                if asyncio.get_running_loop().time() - renewed > LEASE_SECONDS - HEARTBEAT_SECONDS:
                    body.cancel()
                    return

    beating = asyncio.create_task(heartbeat())
    try:
        yield
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        await release(ctx, mailbox_id, owner)
