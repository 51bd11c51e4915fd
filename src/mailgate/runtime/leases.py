"""Mailbox leases: one process at a time reads a mailbox, on one host or many.

A lease is claimed with a conditional UPDATE (works on SQLite and PostgreSQL) and renewed by a
heartbeat; a holder that dies stops renewing, and its lease runs out within `LEASE_SECONDS`.
A holder that cannot renew is stopped while its lease still runs: a claim's lease runs from the
moment the claim began, and each renewal must end `STOP_SECONDS` before the lease does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from sqlalchemy import or_, update

from mailgate.context import Context
from mailgate.errors import MailgateError, OperationFailed
from mailgate.store.models import Mailbox

log = structlog.get_logger(__name__)

LEASE_SECONDS = 10.0
HEARTBEAT_SECONDS = 3.0
STOP_SECONDS = 1.0  # what a holder keeps of its lease to stop in when it cannot renew


class HeldElsewhere(OperationFailed):
    """Another process holds the mailbox's lease."""


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
    The body is cancelled if the lease is lost, or about to run out unrenewed."""
    loop = asyncio.get_running_loop()
    waited = 0.0
    while True:
        claimed_at = loop.time()
        if await claim(ctx, mailbox_id, owner):
            break
        if waited >= wait:
            raise HeldElsewhere(
                "Another mailgate process is reading this mailbox: wait for it to finish, or "
                "stop it (`mailgate serve` and `mailgate worker` read every mailbox)."
            )
        await asyncio.sleep(poll)
        waited += poll
    body = asyncio.current_task()
    assert body is not None

    async def renew(within: float) -> bool:
        attempt = asyncio.create_task(claim(ctx, mailbox_id, owner))
        await asyncio.wait([attempt], timeout=within)
        if not attempt.done():
            # Not awaited: a cancelled claim ends when the database answers its BEGIN (up to
            # SQLite's own wait), and the holder must stop before that.
            attempt.cancel()
            raise TimeoutError
        return attempt.result()

    async def beat() -> None:
        # One attempt at SQLite's write lock: waiting its turn could outlast the lease.
        ctx.db.write_once()
        structlog.contextvars.bind_contextvars(mailbox=mailbox_id, owner=owner)  # this task's
        await heartbeat(renew, body.cancel, claimed_at, clock=loop.time, sleep=asyncio.sleep)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        await release(ctx, mailbox_id, owner)


async def heartbeat(
    renew: Callable[[float], Awaitable[bool]],
    stop: Callable[[], object],
    claimed_at: float,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Renew a lease every `HEARTBEAT_SECONDS` until the holder is stopped.

    `renew(within)` claims the lease again, giving up (TimeoutError) after `within` seconds;
    `claimed_at` is when the claim that holds the lease began, on `clock`. `stop` is called once
    the lease is lost, or when it would run out before a renewal could end."""
    while True:
        await sleep(HEARTBEAT_SECONDS)
        started = clock()
        # The lease runs from the start of the claim that took it, not from its end: a claim
        # that waited for the database has used up part of its own lease already.
        deadline = claimed_at + LEASE_SECONDS - STOP_SECONDS
        if started >= deadline:  # the event loop was held up past the lease
            log.error("mailbox lease ran out before it was renewed")
            stop()
            return
        try:
            held = await renew(deadline - started)
        except Exception as error:  # a database blip: retry, but never past the lease
            if isinstance(error, MailgateError | TimeoutError):
                log.warning("mailbox lease renewal failed", error=str(error) or "timed out")
            else:
                log.exception("mailbox lease renewal failed")
            if clock() + HEARTBEAT_SECONDS >= deadline:
                stop()
                return
            continue
        if not held:
            log.error("mailbox lease lost: another process took the mailbox")
            stop()
            return
        claimed_at = started
