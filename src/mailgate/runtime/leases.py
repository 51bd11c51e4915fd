"""Mailbox leases: one process at a time reads a mailbox, on one host or many.

A lease is claimed with a conditional UPDATE (works on SQLite and PostgreSQL) and renewed by a
heartbeat. Its expiry is written and compared in SQL on the database server's clock
(`store/dbtime.py`), never on the host's: hosts whose clocks differ by minutes still agree on
when a lease runs out. A holder that dies stops renewing, and its lease runs out within
`LEASE_SECONDS`. A holder that cannot renew is stopped while its lease still runs: a claim's
lease runs from the moment the claim began (kept on the event loop's own monotonic clock), and
each renewal must end `STOP_SECONDS` before the lease does.

The supervisor claims free mailboxes several at a time (`claim_free`): on PostgreSQL one
statement picks them with FOR UPDATE SKIP LOCKED, so workers claiming at once never wait for
each other nor pick the same rows; on SQLite (one writer at a time) a conditional UPDATE takes
the ones still free. A mailbox taken from another worker is a lease move (`lease_moves`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa
import structlog
from sqlalchemy import or_, select, update

from mailgate import metrics
from mailgate.context import Context
from mailgate.errors import MailgateError, OperationFailed
from mailgate.store.dbtime import database_now
from mailgate.store.models import Mailbox

log = structlog.get_logger(__name__)

LEASE_SECONDS = 10.0
HEARTBEAT_SECONDS = 3.0
STOP_SECONDS = 1.0  # what a holder keeps of its lease to stop in when it cannot renew

_MAILBOXES = cast(sa.Table, Mailbox.__table__)


@dataclass(frozen=True)
class Timing:
    """A lease's length, how often it is renewed, and what of it a holder keeps to stop in
    (shorter in tests)."""

    lease: float = LEASE_SECONDS
    heartbeat: float = HEARTBEAT_SECONDS
    stop: float = STOP_SECONDS


DEFAULT = Timing()


class HeldElsewhere(OperationFailed):
    """Another process holds the mailbox's lease."""


_moves = 0


def lease_moves() -> int:
    """How many mailboxes this process took from another worker (a dead one's, or one handed
    over) since it started."""
    return _moves


def _free(owner: str | None = None) -> sa.ColumnElement[bool]:
    """A lease nobody holds, one that ran out (on the database's clock), or `owner`'s own."""
    lease_until = _MAILBOXES.c.lease_until
    free = [lease_until.is_(None), lease_until < database_now()]
    if owner is not None:
        free.append(_MAILBOXES.c.lease_owner == owner)
    return or_(*free)


def _held(owner: str, seconds: float) -> dict[str, object]:
    return {
        "lease_owner": owner,
        "lease_until": database_now(seconds),
        "last_lease_owner": owner,
    }


async def claim(ctx: Context, mailbox_id: int, owner: str, seconds: float | None = None) -> bool:
    """Take or renew the mailbox's lease for `seconds` (`LEASE_SECONDS`); False if another
    process holds it."""
    seconds = DEFAULT.lease if seconds is None else seconds
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            update(_MAILBOXES)
            .where(_MAILBOXES.c.id == mailbox_id, _free(owner))
            .values(_held(owner, seconds))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def claim_free(
    ctx: Context, owner: str, limit: int, seconds: float | None = None
) -> list[int]:
    """Take the leases of up to `limit` mailboxes nobody holds, lowest ids first; their ids."""
    if limit <= 0:
        return []
    seconds = DEFAULT.lease if seconds is None else seconds
    m = _MAILBOXES
    claimed: list[tuple[int, str | None]]
    async with ctx.db.session() as session, session.begin():
        if ctx.db.dialect == "postgresql":
            free = (
                select(m.c.id, m.c.last_lease_owner.label("previous"))
                .where(_free())
                .order_by(m.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .cte("free")
            )
            rows = await session.execute(
                update(m)
                .where(m.c.id == free.c.id)
                .values(_held(owner, seconds))
                .returning(m.c.id, free.c.previous)
            )
            claimed = [(mailbox_id, before) for mailbox_id, before in rows]
        else:
            # Read outside the write lock: the UPDATE takes only the ones still free.
            previous = dict(
                (
                    await session.execute(
                        select(m.c.id, m.c.last_lease_owner)
                        .where(_free())
                        .order_by(m.c.id)
                        .limit(limit)
                    )
                ).all()
            )
            if not previous:
                return []
            taken = await session.scalars(
                update(m)
                .where(m.c.id.in_(previous), _free())
                .values(_held(owner, seconds))
                .returning(m.c.id)
            )
            claimed = [(mailbox_id, previous[mailbox_id]) for mailbox_id in taken]
    _count_moves(owner, [before for _id, before in claimed])
    return sorted(mailbox_id for mailbox_id, _before in claimed)


def _count_moves(owner: str, previous_owners: list[str | None]) -> None:
    global _moves
    moved = sum(1 for before in previous_owners if before is not None and before != owner)
    _moves += moved
    if moved:
        metrics.LEASE_MOVES.inc(moved)
        log.info("mailboxes taken from another worker", count=moved, owner=owner)


async def release(ctx: Context, mailbox_id: int, owner: str) -> None:
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(_MAILBOXES)
            .where(_MAILBOXES.c.id == mailbox_id, _MAILBOXES.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


async def release_all(ctx: Context, owner: str) -> int:
    """Give back every lease `owner` holds, in one statement (a worker stopping)."""
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            update(_MAILBOXES)
            .where(_MAILBOXES.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


@asynccontextmanager
async def holding(
    ctx: Context,
    mailbox_id: int,
    owner: str,
    *,
    wait: float = 0.0,
    poll: float = 0.5,
    timing: Timing | None = None,
) -> AsyncIterator[None]:
    """Hold the mailbox's lease (waiting up to `wait` seconds for it), renewed by a heartbeat.
    The body is cancelled if the lease is lost, or about to run out unrenewed."""
    timing = timing or DEFAULT
    loop = asyncio.get_running_loop()
    waited = 0.0
    while True:
        claimed_at = loop.time()
        if await claim(ctx, mailbox_id, owner, timing.lease):
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
        attempt = asyncio.create_task(claim(ctx, mailbox_id, owner, timing.lease))
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
        await heartbeat(
            renew, body.cancel, claimed_at, clock=loop.time, sleep=asyncio.sleep, timing=timing
        )

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
    timing: Timing | None = None,
) -> None:
    """Renew a lease every `timing.heartbeat` seconds until the holder is stopped.

    `renew(within)` claims the lease again, giving up (TimeoutError) after `within` seconds;
    `claimed_at` is when the claim that holds the lease began, on `clock`. `stop` is called once
    the lease is lost, or when it would run out before a renewal could end."""
    timing = timing or DEFAULT
    while True:
        await sleep(timing.heartbeat)
        started = clock()
        # The lease runs from the start of the claim that took it, not from its end: a claim
        # that waited for the database has used up part of its own lease already.
        deadline = claimed_at + timing.lease - timing.stop
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
            if clock() + timing.heartbeat >= deadline:
                stop()
                return
            continue
        if not held:
            log.error("mailbox lease lost: another process took the mailbox")
            stop()
            return
        claimed_at = started
