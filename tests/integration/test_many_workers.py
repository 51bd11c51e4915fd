"""What many workers writing to one PostgreSQL at once must not do: wait for each other's whole
transaction to number an issue, or tell the admin of one incident more than once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from email import message_from_bytes, policy

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.outbound.alerts import run_check
from mailgate.store.db import MIGRATIONS, migrate
from mailgate.store.models import Alert, Credential, Issue, OutboxMessage, Project
from mailgate.tracker.service import add_project, create_issue, find_project, person
from mailgate.unit import Unit

pytestmark = pytest.mark.stores("postgresql")


def write_issue(ctx: Context, session: Session, summary: str) -> int:
    """An issue of HELP by ann, in `session`'s transaction (left open); its number."""
    # Waiting for a lock is an error here, not a hang: the test says who waited.
    session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
    unit = Unit(session, ctx.clock)
    project = find_project(session, "HELP")
    assert project is not None
    return create_issue(unit, project.id, person(unit, "ann@example.com"), summary, "").number


async def test_two_workers_write_issues_of_one_project_side_by_side(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help desk")
    await Unit.run(ctx, lambda unit: person(unit, "ann@example.com"))
    first, second = ctx.db.sync_session(), ctx.db.sync_session()
    with first, second:
        first.begin()
        second.begin()
        one = await asyncio.to_thread(write_issue, ctx, first, "first")
        # The first transaction is still open: the second numbers its issue all the same.
        two = await asyncio.to_thread(write_issue, ctx, second, "second")
        await asyncio.to_thread(second.commit)
        await asyncio.to_thread(first.rollback)  # its number is not given again: a gap
        third = ctx.db.sync_session()
        with third, third.begin():
            three = await asyncio.to_thread(write_issue, ctx, third, "third")
    assert (one, two, three) == (1, 2, 3)
    async with ctx.db.session() as session:
        kept = await session.execute(select(Issue.number, Issue.summary).order_by(Issue.number))
        assert [tuple(row) for row in kept] == [(2, "second"), (3, "third")]


async def test_a_project_from_before_the_upgrade_numbers_on_from_where_it_was(
    settings: Settings, ctx: Context
) -> None:
    await ctx.close()  # the database is made anew below
    engine = sa.create_engine(settings.database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
        connection.execute(
            sa.insert(Project).values(
                key="HELP", name="Help", notify=True, next_number=5, created_at=ctx.clock()
            )
        )
    engine.dispose()
    assert migrate(settings.database_url) is True
    again = Context.open(settings, clock=ctx.clock)
    try:
        numbers = []
        for summary in ("fifth", "sixth"):
            session = again.db.sync_session()
            with session, session.begin():
                numbers.append(await asyncio.to_thread(write_issue, again, session, summary))
        assert numbers == [5, 6]
    finally:
        await again.close()


@contextlib.asynccontextmanager
async def workers(settings: Settings, clock: FakeClock, count: int) -> AsyncIterator[list[Context]]:
    """`count` processes of their own (their own connections), sharing the test's clock."""
    opened = [Context.open(settings, clock=clock, sleep=clock.sleep) for _ in range(count)]
    try:
        yield opened
    finally:
        for ctx in opened:
            await ctx.close()


async def test_workers_checking_at_once_send_one_alert_per_incident(
    ctx: Context, settings: Settings, emulator: RunningEmulator, clock: FakeClock
) -> None:
    await microsoft_credential(ctx, emulator)
    await add_smtp(
        ctx,
        "out",
        SmtpOptions(host="127.0.0.1", security="none", username="s@example.com", password="x"),
    )
    settings = dataclasses.replace(settings, admin_email="admin@example.com")

    async def set_credential(status: str) -> None:
        async with ctx.db.session() as session, session.begin():
            await session.execute(update(Credential).values(status=status, last_error="so"))

    async with workers(settings, clock, 6) as every:
        for _incident in range(2):
            await set_credential("needs-reauthorization")
            queued = await asyncio.gather(*(run_check(worker) for worker in every))
            assert sorted(map(len, queued)) == [0] * 5 + [1]
            await set_credential("active")
            queued = await asyncio.gather(*(run_check(worker) for worker in every))
            assert sorted(map(len, queued)) == [0] * 5 + [1]
            clock.advance(hours=2)  # the next one is a new incident, not a flap
    async with ctx.db.session() as session:
        raws = await session.scalars(select(OutboxMessage.raw).order_by(OutboxMessage.id))
        subjects = [str(message_from_bytes(r, policy=policy.default)["Subject"]) for r in raws]
        assert [s.split(":")[0] for s in subjects] == [
            "[mailgate] PROBLEM",
            "[mailgate] RECOVERED",
        ] * 2
        rows = (await session.scalars(select(Alert))).all()
        assert len(rows) == 2 and all(row.resolved_at is not None for row in rows)
