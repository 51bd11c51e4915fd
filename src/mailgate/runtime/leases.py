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

The leases of one process are renewed together (`Holdings`): one statement per heartbeat
(`renew_held`), whether it holds one mailbox or a thousand. Renewed one by one every 3 s, a
thousand IDLE mailboxes would be hundreds of write transactions a second. A mailbox missing
from the renewal has been lost (another process took it, or it was deleted): its loop is
stopped at once. Each lease keeps its own deadline, so a mailbox claimed a moment ago is not
stopped with the ones whose renewal is overdue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar, cast

import sqlalchemy as sa
import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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

T = TypeVar("T")


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


HELD_ELSEWHERE = (
    "Another mailgate process is reading this mailbox: wait for it to finish, or stop it "
    "(`mailgate serve` and `mailgate worker` read every mailbox)."
)


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


@dataclass(frozen=True)
class Renewal:
    """What one renewal found: the leases renewed, and those lost (another process holds the
    mailbox now, or it was deleted). A lease in neither was not renewed this time (its row was
    being written): it is tried again at the next heartbeat."""

    renewed: frozenset[int]
    lost: frozenset[int] = frozenset()


async def renew_held(
    session: AsyncSession, owner: str, mailbox_ids: Collection[int], seconds: float
) -> Renewal:
    """Renew the leases `owner` holds of `mailbox_ids` for `seconds` (on the database's
    clock), in one statement of `session`'s transaction.

    Only the mailboxes the caller runs are renewed, not every row in `owner`'s name: a lease
    left in its name by a loop whose release failed runs out, and a worker takes it again. On
    PostgreSQL a row another transaction is writing (the mailbox's own loop storing its UID
    state) is skipped, not waited for, so one busy mailbox never holds back the renewal of the
    others; a second statement, only then, tells such a row from a lost lease."""
    ids = sorted(mailbox_ids)
    if not ids:
        return Renewal(frozenset())
    m = _MAILBOXES
    mine = and_(m.c.id.in_(ids), m.c.lease_owner == owner)
    if session.get_bind().dialect.name == "postgresql":
        unlocked = select(m.c.id).where(mine).with_for_update(skip_locked=True).cte("unlocked")
        renewal = update(m).where(m.c.id == unlocked.c.id)
    else:  # SQLite: one writer at a time, no row is ever locked by another
        renewal = update(m).where(mine)
    renewed = frozenset(
        await session.scalars(renewal.values(lease_until=database_now(seconds)).returning(m.c.id))
    )
    missing = set(ids) - renewed
    if not missing:
        return Renewal(renewed)
    still_mine = await session.scalars(
        select(m.c.id).where(m.c.id.in_(sorted(missing)), m.c.lease_owner == owner)
    )
    return Renewal(renewed, frozenset(missing - set(still_mine)))


async def renew(ctx: Context, owner: str, mailbox_ids: Collection[int], seconds: float) -> Renewal:
    """`renew_held` in a transaction of its own, on the pool kept for heartbeats."""
    async with ctx.db.control_session() as session, session.begin():
        return await renew_held(session, owner, mailbox_ids, seconds)


async def bounded(attempt: Awaitable[T], seconds: float) -> T:
    """`attempt`'s result, or TimeoutError once `seconds` have passed.

    The attempt is cancelled then, not awaited: a cancelled statement ends when the database
    answers its BEGIN (up to SQLite's own wait), and a lease's holder must stop before that."""
    task = asyncio.ensure_future(attempt)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
    try:
        finished, _pending = await asyncio.wait([task], timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not finished:
        task.cancel()
        raise TimeoutError
    return task.result()


Renew = Callable[[frozenset[int], float], Awaitable[Renewal]]
"""Renew the leases of these mailboxes, giving up (TimeoutError) after so many seconds."""


@dataclass(eq=False)
class _Hold:
    claimed_at: float  # when the claim or renewal the lease runs from began (`Holdings.now`)
    stop: Callable[[], object]  # called once, when the lease is lost or about to run out


class Holdings:
    """The mailbox leases one process holds, renewed together: one call of a `Renew` per
    heartbeat, whatever their number.

    Each lease has its own deadline on `clock` (the event loop's monotonic time unless given):
    it runs from the start of the claim or renewal that last took it, and a renewal must end
    `timing.stop` before the lease does. At each heartbeat (`beat`), a lease lost is stopped at
    once; one not renewed (the database slow or down) is stopped when the next heartbeat could
    not renew it in time, so its holder stops while the lease still runs."""

    def __init__(self, timing: Timing | None = None, clock: Callable[[], float] | None = None):
        self.timing = timing or DEFAULT
        self._clock = clock
        self._held: dict[int, _Hold] = {}

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def held(self) -> frozenset[int]:
        """The mailboxes whose leases are held now."""
        return frozenset(self._held)

    def add(self, mailbox_id: int, claimed_at: float, stop: Callable[[], object]) -> _Hold:
        """Hold the lease claimed at `claimed_at`; `stop` is called should it be lost."""
        hold = self._held[mailbox_id] = _Hold(claimed_at, stop)
        return hold

    def discard(self, mailbox_id: int, hold: _Hold) -> None:
        if self._held.get(mailbox_id) is hold:
            del self._held[mailbox_id]

    def _deadline(self, claimed_at: float) -> float:
        # The lease runs from the start of the claim that took it, not from its end: a claim
        # that waited for the database has used up part of its own lease already.
        return claimed_at + self.timing.lease - self.timing.stop

    def _stop(self, mailbox_id: int, hold: _Hold, why: str) -> None:
        self.discard(mailbox_id, hold)
        log.error(why, mailbox=mailbox_id)
        hold.stop()

    async def beat(self, renew: Renew) -> None:
        """One heartbeat: renew every lease held with one call of `renew`, and stop the holders
        of those lost, or that could not be renewed before the next heartbeat ends."""
        started = self.now()
        for mailbox_id, hold in list(self._held.items()):
            if started >= self._deadline(hold.claimed_at):  # the event loop was held up
                self._stop(mailbox_id, hold, "mailbox lease ran out before it was renewed")
        holds = dict(self._held)
        deadline = min(
            (self._deadline(hold.claimed_at) for hold in holds.values()),
            default=self._deadline(started),
        )
        try:
            renewal = await renew(frozenset(holds), deadline - started)
        except Exception as error:  # a database blip: retry, but never past a lease
            if isinstance(error, MailgateError | TimeoutError):
                log.warning("mailbox lease renewal failed", error=str(error) or "timed out")
            else:
                log.exception("mailbox lease renewal failed")
            renewal = Renewal(frozenset())
        for mailbox_id, hold in holds.items():
            if self._held.get(mailbox_id) is not hold:
                continue  # given back meanwhile
            if mailbox_id in renewal.renewed:
                hold.claimed_at = max(hold.claimed_at, started)
            elif mailbox_id in renewal.lost:
                self._stop(mailbox_id, hold, "mailbox lease lost: another process took the mailbox")
            elif self.now() + self.timing.heartbeat >= self._deadline(hold.claimed_at):
                self._stop(mailbox_id, hold, "mailbox lease not renewed in time")

    async def keep(
        self, renew: Renew, sleep: Callable[[float], Awaitable[None]], *, while_held: bool = False
    ) -> None:
        """Renew the leases every `timing.heartbeat` seconds: forever, or `while_held` until
        the last holder is stopped."""
        while True:
            await sleep(self.timing.heartbeat)
            await self.beat(renew)
            if while_held and not self._held:
                return

    @asynccontextmanager
    async def hold(
        self, ctx: Context, mailbox_id: int, owner: str, claimed_at: float | None = None
    ) -> AsyncIterator[None]:
        """Run the body under the mailbox's lease, renewed with the others (`beat`): claimed
        now, or taken already by a claim that began at `claimed_at` (`claim_free`). The body is
        cancelled if the lease is lost, or about to run out unrenewed; the lease is given back
        when the body ends."""
        if claimed_at is None or self.now() >= self._deadline(claimed_at):
            claimed_at = self.now()
            if not await claim(ctx, mailbox_id, owner, self.timing.lease):
                raise HeldElsewhere(HELD_ELSEWHERE)
        body = asyncio.current_task()
        assert body is not None
        hold = self.add(mailbox_id, claimed_at, body.cancel)
        try:
            yield
        finally:
            self.discard(mailbox_id, hold)
            await release(ctx, mailbox_id, owner)


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
    """Hold the mailbox's lease (waiting up to `wait` seconds for it), renewed by a heartbeat
    of its own (`mailbox poll`; a worker renews all its leases at once). The body is cancelled
    if the lease is lost, or about to run out unrenewed."""
    holdings = Holdings(timing)
    waited = 0.0
    while True:
        claimed_at = holdings.now()
        if await claim(ctx, mailbox_id, owner, holdings.timing.lease):
            break
        if waited >= wait:
            raise HeldElsewhere(HELD_ELSEWHERE)
        await asyncio.sleep(poll)
        waited += poll

    async def renew_within(mailbox_ids: frozenset[int], within: float) -> Renewal:
        return await bounded(renew(ctx, owner, mailbox_ids, holdings.timing.lease), within)

    async def beat() -> None:
        # One attempt at SQLite's write lock: waiting its turn could outlast the lease.
        ctx.db.write_once()
        structlog.contextvars.bind_contextvars(mailbox=mailbox_id, owner=owner)  # this task's
        await holdings.keep(renew_within, asyncio.sleep, while_held=True)

    async with holdings.hold(ctx, mailbox_id, owner, claimed_at):
        beating = asyncio.create_task(beat())
        try:
            yield
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)


async def heartbeat(
    renew: Callable[[float], Awaitable[bool]],
    stop: Callable[[], object],
    claimed_at: float,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    timing: Timing | None = None,
) -> None:
    """Renew one lease every `timing.heartbeat` seconds until its holder is stopped: `Holdings`
    with one lease.

    `renew(within)` claims the lease again (False: another process has it), giving up
    (TimeoutError) after `within` seconds; `claimed_at` is when the claim that holds the lease
    began, on `clock`. `stop` is called once the lease is lost, or when it would run out before
    a renewal could end."""
    holdings = Holdings(timing, clock)
    holdings.add(0, claimed_at, stop)

    async def renew_one(_held: frozenset[int], within: float) -> Renewal:
        if await renew(within):
            return Renewal(frozenset({0}))
        return Renewal(frozenset(), lost=frozenset({0}))

    await holdings.keep(renew_one, sleep, while_held=True)
