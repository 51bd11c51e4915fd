"""Workers sharing the mailboxes on PostgreSQL: even shares within seconds of a worker joining,
a stopped worker's mailboxes taken at once, a dead one's once its leases run out, and SIGTERM
on `mailgate worker` handing its mailboxes over before its lease would have run out. On both
stores, a worker's heartbeat: one statement renews all its leases, however many; a mailbox
whose lease was taken is stopped at the next heartbeat, the others go on; the database out of
reach for longer than the lease stops every loop before the lease ends.

The supervisors run in this process with a fast pace and a stub mailbox loop (it waits to be
stopped), so only the sharing is tested, in seconds. The heartbeat tests beat by hand, on an
injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, select, update
from tests.support.mailbox_rows import add_mailbox_rows, lease_owners
from tests.support.workers import Worker, worker_env

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.errors import Transient
from mailgate.runtime import leases, workers
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.dbtime import database_now
from mailgate.store.models import Mailbox
from mailgate.store.models import Worker as WorkerRow

pytestmark = pytest.mark.stores("postgresql")

PACE = workers.Pace(scan=0.1, alive=1.5, grace=2.0, lease=leases.Timing(1.5, 0.3, 0.3))
# Heartbeats by hand on an injected clock: the leases' own (real) heartbeat and the scan after
# the first wait far longer than a test; a lease runs out unrenewed after three heartbeats.
BY_HAND = workers.Pace(scan=600, alive=600, grace=2.0, lease=leases.Timing(1000, 300, 100))
PATIENCE = 20.0  # how long a condition may take before the test fails
STARTING = 60.0  # how long a `mailgate worker` may take to start, on a loaded machine


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        assert loop.time() < deadline, f"not within {PATIENCE} s: {what}"
        await asyncio.sleep(0.05)


async def stub_loop(_mailbox: Mailbox, stop: asyncio.Event) -> None:
    await stop.wait()


class Pool:
    """Supervisors in this process, each with its own context (its own connections)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running: dict[str, tuple[Supervisor, asyncio.Task[None]]] = {}

    async def start(
        self,
        name: str,
        pace: workers.Pace = PACE,
        lease_clock: Callable[[], float] | None = None,
    ) -> Supervisor:
        ctx = Context.open(self.settings)
        supervisor = Supervisor(ctx, pace=pace, mailbox_loop=stub_loop, lease_clock=lease_clock)
        supervisor.keeper.owner = name
        self.running[name] = (supervisor, asyncio.create_task(supervisor.run_mailboxes()))
        return supervisor

    async def stop(self, name: str) -> None:
        supervisor, task = self.running.pop(name)
        supervisor.stop()
        await asyncio.wait_for(task, 10)
        await supervisor.ctx.close()

    def shares(self) -> list[set[int]]:
        return [supervisor.running() for supervisor, _task in self.running.values()]

    def sizes(self) -> list[int]:
        return sorted(len(share) for share in self.shares())

    def disjoint(self) -> bool:
        shares = self.shares()
        return sum(map(len, shares)) == len(set().union(*shares))


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    started = Pool(settings)
    try:
        yield started
    finally:
        for name in list(started.running):
            with contextlib.suppress(Exception):
                await started.stop(name)


async def test_a_new_worker_gets_its_share_and_a_stopped_ones_mailboxes_move(
    ctx: Context, pool: Pool
) -> None:
    ids = await add_mailbox_rows(ctx, 9)
    await pool.start("a")
    await pool.start("b")
    await until(lambda: pool.sizes() == [4, 5], "two workers share 9 as 5 and 4")
    moves = leases.lease_moves()
    await pool.start("c")
    await until(lambda: pool.sizes() == [3, 3, 3], "three workers share 9 as 3, 3, 3")
    assert pool.disjoint()
    owners = await lease_owners(ctx)
    assert sorted(owners[i] or "" for i in ids) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert leases.lease_moves() == moves + 3  # c's three, each handed over by a or b
    c_had = pool.running["c"][0].running()
    await pool.stop("c")  # hands its mailboxes back and leaves: no waiting for its leases
    await until(lambda: pool.sizes() == [4, 5], "c's mailboxes taken by a and b")
    assert pool.disjoint()
    async with ctx.db.session() as session:
        assert list(await session.scalars(select(WorkerRow.name).order_by(WorkerRow.name))) == [
            "a",
            "b",
        ]
    owners = await lease_owners(ctx)
    assert {owners[i] for i in c_had} <= {"a", "b"}


async def test_a_dead_workers_mailboxes_move_once_its_leases_run_out(
    ctx: Context, pool: Pool
) -> None:
    ids = await add_mailbox_rows(ctx, 6)
    # A worker that died a moment ago: its heartbeat and its three leases are left, unrenewed.
    async with ctx.db.session() as session, session.begin():
        now = database_now()
        await session.execute(
            insert(WorkerRow).values(
                name="dead", host="gone", pid=1, started_at=now, heartbeat_at=now
            )
        )
        await session.execute(
            update(Mailbox)
            .where(Mailbox.id.in_(ids[:3]))
            .values(lease_owner="dead", lease_until=database_now(1.0), last_lease_owner="dead")
        )
    moves = leases.lease_moves()
    await pool.start("a")
    await until(lambda: pool.sizes() == [6], "a takes the free ones and the dead worker's")
    assert leases.lease_moves() == moves + 3
    assert set((await lease_owners(ctx)).values()) == {"a"}


async def test_rows_of_workers_dead_for_a_day_are_pruned(ctx: Context) -> None:
    await workers.beat(ctx, "alive")
    await workers.beat(ctx, "long gone")
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(WorkerRow)
            .where(WorkerRow.name == "long gone")
            .values(heartbeat_at=database_now(-workers.PRUNE_AFTER_SECONDS - 60))
        )
    assert await workers.prune(ctx) == 1
    assert await workers.live_workers(ctx) == ["alive"]
    census = await workers.census(ctx, workers.Pace.alive)
    assert census.holdings == {"alive": 0}


async def test_sigterm_hands_the_mailbox_over_before_its_lease_would_run_out(
    ctx: Context, pool: Pool, home: Path, database_url: str, tmp_path: Path
) -> None:
    [mailbox] = await add_mailbox_rows(ctx, 1)
    first = Worker("first", worker_env(home, database_url), tmp_path / "first.log")
    first.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTING
        while not (await lease_owners(ctx))[mailbox]:
            assert loop.time() < deadline and first.running, first.tail()
            await asyncio.sleep(0.1)
        second = await pool.start("second")  # takes nothing: the first one holds the mailbox
        await asyncio.sleep(1.0)
        assert second.running() == set()
        async with ctx.db.session() as session:
            held_until = await session.scalar(select(Mailbox.lease_until))
        assert held_until is not None
        first.terminate()
        await until(lambda: second.running() == {mailbox}, "the second worker takes over")
        async with ctx.db.session() as session:
            taken_at = await session.scalar(select(database_now()))
        assert taken_at is not None
        # Handed over: not left to run out (the first one's lease still had seconds to go).
        assert taken_at < held_until, (taken_at, held_until)
        assert await asyncio.to_thread(first.stop, signalled=True) == 0, first.tail()
    finally:
        first.kill()


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement sent meanwhile, by any engine of this process."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)


async def one_worker(
    ctx: Context, pool: Pool, mailboxes: int
) -> tuple[list[int], Ticks, Supervisor]:
    """The mailboxes' ids, the clock of the leases, and the worker running them all."""
    ids = await add_mailbox_rows(ctx, mailboxes)
    ticks = Ticks()
    worker = await pool.start("a", BY_HAND, ticks)
    await until(lambda: worker.running() == set(ids), "a runs every mailbox")
    return ids, ticks, worker


@pytest.mark.stores("sqlite", "postgresql")
async def test_one_statement_renews_all_the_leases_of_a_worker_at_each_heartbeat(
    ctx: Context, pool: Pool
) -> None:
    ids, ticks, worker = await one_worker(ctx, pool, 200)
    with statements() as sent:
        for _ in range(4):  # claimed at 0: without a renewal, stopped at the third
            ticks.advance(BY_HAND.lease.heartbeat)
            await worker.heartbeat()
    assert worker.running() == set(ids)
    assert len([s for s in sent if "mailboxes" in s]) == 4, sent  # one per heartbeat
    assert len(sent) <= 4 * 3, sent  # and the worker's row, whatever the number of mailboxes
    async with ctx.db.session() as session:
        renewed = await session.scalar(
            select(sa.func.count()).where(
                Mailbox.lease_owner == worker.owner,
                Mailbox.lease_until > database_now(BY_HAND.lease.lease - 60),
            )
        )
    assert renewed == len(ids)


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_mailbox_whose_lease_was_taken_stops_at_the_next_heartbeat_alone(
    ctx: Context, pool: Pool
) -> None:
    ids, ticks, worker = await one_worker(ctx, pool, 10)
    taken = ids[3]
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(Mailbox)
            .where(Mailbox.id == taken)
            .values(lease_owner="another worker", lease_until=database_now(600))
        )
    ticks.advance(BY_HAND.lease.heartbeat)
    await worker.heartbeat()
    await until(lambda: worker.running() == set(ids) - {taken}, "only its loop stops")
    for _ in range(3):  # the others' leases go on being renewed
        ticks.advance(BY_HAND.lease.heartbeat)
        await worker.heartbeat()
    assert worker.running() == set(ids) - {taken}
    owners = await lease_owners(ctx)
    assert owners == {i: "another worker" if i == taken else worker.owner for i in ids}


@pytest.mark.stores("sqlite", "postgresql")
async def test_the_database_out_of_reach_past_the_lease_stops_every_loop_before_it_ends(
    ctx: Context, pool: Pool
) -> None:
    ids, ticks, worker = await one_worker(ctx, pool, 10)

    def unreachable(*_args: Any) -> None:
        raise Transient("The database server failed this work (ConnectionRefusedError).")

    timing = BY_HAND.lease
    sa.event.listen(sa.Engine, "before_cursor_execute", unreachable)
    try:
        ticks.advance(timing.heartbeat)
        await worker.heartbeat()  # fails: there is time for another try
        assert worker.running() == set(ids)
        ticks.advance(timing.heartbeat)
        await worker.heartbeat()  # fails again: the next one could end after the lease
        await until(lambda: worker.running() == set(), "every loop stops")
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", unreachable)
    assert ticks.now < timing.lease  # claimed at 0: stopped while the leases still run
