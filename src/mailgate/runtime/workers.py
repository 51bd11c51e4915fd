"""Workers: the processes that read mailboxes, and their fair shares.

Every process running a supervisor (`mailgate serve`, `mailgate worker`) has a row in `workers`
named after the owner of its leases, and renews its heartbeat there, in one transaction with the
leases of the mailboxes it runs (`beat`); the heartbeat, like the leases, is on the database's
clock (`store/dbtime.py`). A worker whose heartbeat is older than
`Pace.alive` is dead. A worker takes new mailboxes only up to its share, ceil(mailboxes / live
workers), and hands back what it holds above it: when a worker starts, the others make room for
it within seconds; when one dies, its leases run out and the others' shares grow to take its
mailboxes. A worker that stops deletes its row (its leases are given back), so the others grow
at once. Rows of workers dead for `PRUNE_AFTER_SECONDS` are deleted.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import cast

import sqlalchemy as sa
from sqlalchemy import delete, func, select, update

from mailgate.context import Context
from mailgate.runtime.leases import LEASE_SECONDS, Renewal, Timing, renew_held
from mailgate.store.dbtime import database_now
from mailgate.store.models import Mailbox, Worker

PRUNE_AFTER_SECONDS = 24 * 3600.0

_WORKERS = cast(sa.Table, Worker.__table__)
_MAILBOXES = cast(sa.Table, Mailbox.__table__)


@dataclass(frozen=True)
class Pace:
    """How often a worker looks at the mailboxes, when another worker counts as dead, how long
    a stopping worker lets its mailbox loops finish the message in hand, and its leases (their
    heartbeat is the worker's); shorter in tests."""

    scan: float = 2.0  # a look is a statement: every 1 s, 0.25 % of a core at 1,000 mailboxes
    alive: float = 10.0
    grace: float = 30.0
    lease: Timing = field(default_factory=Timing)


def share(mailboxes: int, workers: int) -> int:
    """The most mailboxes one of `workers` live workers takes: ceil(mailboxes / workers)."""
    return math.ceil(mailboxes / max(workers, 1))


@dataclass(frozen=True)
class Census:
    """What one worker sees: how many mailboxes there are, and how many leases each live worker
    holds (itself included)."""

    mailboxes: int
    holdings: dict[str, int]

    def plan(self, me: str, mine: int) -> int:
        """How many more mailboxes `me`, running `mine`, should take (negative: hand back).

        Nobody goes above ceil(mailboxes / workers). While another live worker has fewer than
        floor(mailboxes / workers), those above the floor hand back down to it and take no
        more, so the shares even out (10 over 3 workers: 4, 3, 3) without two workers taking
        the same surplus in turn."""
        workers = len(self.holdings.keys() | {me})
        most = share(self.mailboxes, workers)
        least = self.mailboxes // workers
        starving = any(n < least for name, n in self.holdings.items() if name != me)
        return (least if starving else most) - mine


async def beat(
    ctx: Context, name: str, held: Collection[int] = (), lease: float = LEASE_SECONDS
) -> Renewal:
    """Register the worker `name`, or renew its heartbeat, and in the same transaction renew
    the leases of the mailboxes it runs (`held`, for `lease` seconds) in one statement; what
    that renewal found. Both on the database's clock."""
    async with ctx.db.control_session() as session, session.begin():
        renewed = await session.execute(
            update(_WORKERS).where(_WORKERS.c.name == name).values(heartbeat_at=database_now())
        )
        if not renewed.rowcount:  # type: ignore[attr-defined]
            # A new worker: two processes never share a name (the owner of their leases).
            await session.execute(
                _WORKERS.insert().values(
                    name=name,
                    host=socket.gethostname()[:255],
                    pid=os.getpid(),
                    started_at=database_now(),
                    heartbeat_at=database_now(),
                )
            )
        return await renew_held(session, name, held, lease)


async def census(ctx: Context, alive: float) -> Census:
    """The mailboxes, and the leases held by each worker that beat within `alive` seconds.

    One statement (a row per live worker, each with the count of all mailboxes): a worker
    looks every `Pace.scan` seconds, and at a thousand mailboxes three statements cost a
    worker in IDLE twice the CPU of one."""
    mailboxes = _MAILBOXES
    count = select(func.count()).select_from(mailboxes).scalar_subquery()
    held = (
        select(func.count())
        .where(
            mailboxes.c.lease_owner == _WORKERS.c.name,
            mailboxes.c.lease_until > database_now(),
        )
        .scalar_subquery()
    )
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(count, _WORKERS.c.name, held).where(
                    _WORKERS.c.heartbeat_at > database_now(-alive)
                )
            )
        ).all()
        if not rows:  # no live worker yet (not even this one)
            return Census(int(await session.scalar(select(count)) or 0), {})
    return Census(int(rows[0][0]), {name: int(leases) for _count, name, leases in rows})


async def leave(ctx: Context, name: str) -> None:
    """A worker stopping: its row goes, so the others' shares grow at once."""
    async with ctx.db.session() as session, session.begin():
        await session.execute(delete(_WORKERS).where(_WORKERS.c.name == name))


async def prune(ctx: Context, after: float = PRUNE_AFTER_SECONDS) -> int:
    """Delete the rows of workers whose heartbeat is older than `after` seconds."""
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            delete(_WORKERS).where(_WORKERS.c.heartbeat_at < database_now(-after))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


async def live_workers(ctx: Context, alive: float = Pace.alive) -> list[str]:
    """The names of the workers alive now, oldest first."""
    async with ctx.db.session() as session:
        return list(
            await session.scalars(
                select(_WORKERS.c.name)
                .where(_WORKERS.c.heartbeat_at > database_now(-alive))
                .order_by(_WORKERS.c.started_at, _WORKERS.c.id)
            )
        )
