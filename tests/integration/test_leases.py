"""Mailbox leases on the database's clock, on SQLite and PostgreSQL: one holder at a time, a
lease that runs out whatever the hosts' clocks say, free mailboxes claimed several at a time
(on PostgreSQL with FOR UPDATE SKIP LOCKED) and moves counted; two holders whose host clocks
differ by ten minutes never hold one mailbox at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from tests.support.clock import FakeClock
from tests.support.mailbox_rows import add_mailbox_rows, lease_owners

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.runtime import leases
from mailgate.store.dbtime import database_now
from mailgate.store.models import Mailbox

# Short leases, so that running out takes a fraction of a second.
FAST = leases.Timing(lease=0.6, heartbeat=0.15, stop=0.2)


@contextlib.asynccontextmanager
async def host(settings: Settings, clock: Callable[[], datetime]) -> AsyncIterator[Context]:
    """A process of its own (its own engines) on a host whose clock is `clock`."""
    ctx = Context.open(settings, clock=clock)
    try:
        yield ctx
    finally:
        await ctx.close()


def skewed(minutes: float) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


@pytest.mark.stores()
async def test_one_holder_at_a_time_until_it_releases(ctx: Context) -> None:
    [mailbox] = await add_mailbox_rows(ctx, 1)
    assert await leases.claim(ctx, mailbox, "a")
    assert await leases.claim(ctx, mailbox, "a")  # its own: renewed
    assert not await leases.claim(ctx, mailbox, "b")
    await leases.release(ctx, mailbox, "b")  # not b's to release
    assert not await leases.claim(ctx, mailbox, "b")
    await leases.release(ctx, mailbox, "a")
    assert await leases.claim(ctx, mailbox, "b")
    assert await lease_owners(ctx) == {mailbox: "b"}


@pytest.mark.stores()
async def test_a_lease_runs_out_on_the_database_clock_whatever_the_hosts_say(
    ctx: Context, settings: Settings, clock: FakeClock
) -> None:
    [mailbox] = await add_mailbox_rows(ctx, 1)
    async with host(settings, skewed(-10)) as behind, host(settings, skewed(+10)) as ahead:
        assert await leases.claim(behind, mailbox, "behind", seconds=0.5)
        # Ten minutes ahead, the host would think the lease ran out long ago: it has not.
        assert not await leases.claim(ahead, mailbox, "ahead")
        clock.advance(days=1)
        assert not await leases.claim(ctx, mailbox, "a day later on a fake clock")
        await asyncio.sleep(0.7)  # on the database's clock, the lease has run out
        assert await leases.claim(ahead, mailbox, "ahead", seconds=30)
        assert not await leases.claim(behind, mailbox, "behind")
    async with ctx.db.session() as session:
        until = await session.scalar(select(Mailbox.lease_until))
        server_now = await session.scalar(select(database_now()))
    assert until is not None and server_now is not None
    assert timedelta(seconds=25) < until - server_now <= timedelta(seconds=30)


@pytest.mark.stores()
async def test_free_mailboxes_are_claimed_up_to_a_limit_and_moves_counted(
    ctx: Context,
) -> None:
    ids = await add_mailbox_rows(ctx, 5)
    moves = leases.lease_moves()
    assert await leases.claim_free(ctx, "a", 3) == ids[:3]
    assert await leases.claim_free(ctx, "b", 10) == ids[3:]
    assert await leases.claim_free(ctx, "c", 10) == []
    assert leases.lease_moves() == moves  # nobody held them before
    assert await leases.release_all(ctx, "a") == 3
    assert await leases.claim_free(ctx, "a", 1) == ids[:1]  # a's own again: no move
    assert await leases.claim_free(ctx, "b", 10) == ids[1:3]
    assert leases.lease_moves() == moves + 2
    owners = await lease_owners(ctx)
    assert [owners[i] for i in ids] == ["a", "b", "b", "b", "b"]


@pytest.mark.stores()
async def test_a_holder_keeps_its_lease_past_its_length_and_gives_it_back(
    ctx: Context,
) -> None:
    [mailbox] = await add_mailbox_rows(ctx, 1)
    async with leases.holding(ctx, mailbox, "a", timing=FAST):
        await asyncio.sleep(3 * FAST.lease)  # renewed by the heartbeat meanwhile
        assert not await leases.claim(ctx, mailbox, "b")
    assert await lease_owners(ctx) == {mailbox: None}
    with pytest.raises(leases.HeldElsewhere):
        async with leases.holding(ctx, mailbox, "b"), leases.holding(ctx, mailbox, "c"):
            pass


@pytest.mark.stores()
async def test_one_statement_renews_the_leases_held_and_tells_the_lost_ones(ctx: Context) -> None:
    ids = await add_mailbox_rows(ctx, 4)
    assert await leases.claim_free(ctx, "a", 3) == ids[:3]
    await leases.release(ctx, ids[1], "a")
    renewal = await leases.renew(ctx, "a", ids, 30)
    # ids[3] was never a's, ids[1] is no more: neither is renewed, both are lost.
    assert renewal == leases.Renewal(frozenset({ids[0], ids[2]}), frozenset({ids[1], ids[3]}))
    async with ctx.db.session() as session:
        renewed = await session.scalars(
            select(Mailbox.id).where(Mailbox.lease_until > database_now(25)).order_by(Mailbox.id)
        )
        assert list(renewed) == [ids[0], ids[2]]  # for 30 s, on the database's clock


@pytest.mark.stores("postgresql")
async def test_a_renewal_skips_a_row_being_written_instead_of_waiting_for_it(
    ctx: Context, settings: Settings
) -> None:
    ids = await add_mailbox_rows(ctx, 3)
    assert await leases.claim_free(ctx, "a", 3) == ids
    await leases.release(ctx, ids[2], "a")
    async with host(settings, skewed(0)) as other, other.db.session() as writer, writer.begin():
        # The first mailbox's loop is storing its UID state: its row is locked until it commits.
        await writer.execute(update(Mailbox).where(Mailbox.id == ids[0]).values(last_uid=7))
        renewal = await asyncio.wait_for(leases.renew(ctx, "a", ids, 30), 20)
    assert renewal == leases.Renewal(frozenset({ids[1]}), lost=frozenset({ids[2]}))
    renewal = await leases.renew(ctx, "a", ids[:2], 30)  # committed: renewed again
    assert renewal == leases.Renewal(frozenset(ids[:2]))


@pytest.mark.stores("postgresql")
async def test_workers_claiming_at_once_never_take_one_mailbox_twice(
    ctx: Context, settings: Settings
) -> None:
    ids = await add_mailbox_rows(ctx, 30)
    async with contextlib.AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(host(settings, skewed(0))) for _ in range(4)]
        claims = await asyncio.gather(
            *(leases.claim_free(h, f"worker-{n}", 10) for n, h in enumerate(hosts))
        )
    taken = [mailbox for claimed in claims for mailbox in claimed]
    assert sorted(taken) == ids  # 30 of 40 asked for: each once, none left
    owners = await lease_owners(ctx)
    for n, claimed in enumerate(claims):
        assert {owners[i] for i in claimed} <= {f"worker-{n}"}


@pytest.mark.stores("postgresql")
async def test_hosts_whose_clocks_differ_by_minutes_never_hold_one_mailbox_at_once(
    ctx: Context, settings: Settings
) -> None:
    [mailbox] = await add_mailbox_rows(ctx, 1)
    loop = asyncio.get_running_loop()
    held: list[tuple[float, float, str]] = []  # from, to (loop time), holder

    async def hold_once(h: Context, name: str) -> None:
        async with leases.holding(h, mailbox, name, timing=FAST):
            began = loop.time()
            try:
                await asyncio.sleep(2 * FAST.lease)  # renewed meanwhile
            finally:
                held.append((began, loop.time(), name))

    async def holder(h: Context, name: str, until: float) -> None:
        while loop.time() < until:
            attempt = asyncio.create_task(hold_once(h, name))
            # Cancelled when it lost its lease; HeldElsewhere when the other one has it.
            await asyncio.gather(attempt, return_exceptions=True)
            # After a turn, time for the other one to take over; else soon again.
            had_a_turn = attempt.cancelled() or attempt.exception() is None
            await asyncio.sleep(0.3 if had_a_turn else 0.02)

    async with host(settings, skewed(+5)) as ahead, host(settings, skewed(-5)) as behind:
        until = loop.time() + 5.0
        await asyncio.gather(holder(ahead, "ahead", until), holder(behind, "behind", until))
    spans = sorted(held)
    for (_b, first_ended, first), (then_began, _e, then) in itertools.pairwise(spans):
        assert first_ended <= then_began, f"{first} and {then} held the mailbox at once"
    assert sum(a[2] != b[2] for a, b in itertools.pairwise(spans)) >= 2, spans  # handed over
