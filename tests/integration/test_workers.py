"""Workers sharing the mailboxes on PostgreSQL: even shares within seconds of a worker joining,
a stopped worker's mailboxes taken at once, a dead one's once its leases run out, and SIGTERM
on `mailgate worker` handing its mailboxes over before its lease would have run out.

The supervisors run in this process with a fast pace and a stub mailbox loop (it waits to be
stopped), so only the sharing is tested, in seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update
from tests.support.mailbox_rows import add_mailbox_rows, lease_owners
from tests.support.workers import Worker, worker_env

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.runtime import leases, workers
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.dbtime import database_now
from mailgate.store.models import Mailbox
from mailgate.store.models import Worker as WorkerRow

pytestmark = pytest.mark.stores("postgresql")

PACE = workers.Pace(
    scan=0.1, heartbeat=0.2, alive=1.5, grace=2.0, lease=leases.Timing(1.5, 0.3, 0.3)
)
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

    async def start(self, name: str) -> Supervisor:
        ctx = Context.open(self.settings)
        supervisor = Supervisor(ctx, pace=PACE, mailbox_loop=stub_loop)
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
