"""PostgreSQL failing under a running mailbox loop (the suite's real server, tests/support/
postgres.py): restarted in the middle of a batch, down for a while, read-only. Each time nothing
is lost or taken twice — a batch's receipts and issues are one transaction, rolled back whole and
taken again — the log says what is wrong while it lasts, and the loop goes on by itself once the
server is back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, message, with_mailbox
from tests.support.postgres import Postgres

from mailgate.backoff import Backoff
from mailgate.config import Settings
from mailgate.context import Context
from mailgate.errors import Transient
from mailgate.runtime.imap_mailbox import receipts_of, run_mailbox
from mailgate.store.models import Issue, Mailbox

pytestmark = pytest.mark.stores("postgresql")

MESSAGES = 20  # from one sender: under its flood limit (30 an hour)
OUTAGE_SECONDS = 2.0


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Context]:
    """A context on the real clock and sleep, like a running worker."""
    ctx = Context.open(settings)
    yield ctx
    await ctx.close()


@contextmanager
def when_issue_is_written(number: int, fault: Callable[[], None]) -> Iterator[threading.Event]:
    """Run `fault` just before the `number`-th INSERT of an issue reaches the server (in the
    thread of the batch's transaction: the batch is half written); the event is set after."""
    seen = 0
    done = threading.Event()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal seen
        if statement.lstrip().upper().startswith("INSERT INTO ISSUES") and not done.is_set():
            seen += 1
            if seen == number:
                fault()
                done.set()

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    try:
        yield done
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)


async def wait_until(check: Callable[[], bool], seconds: float = 30) -> None:
    for _ in range(int(seconds * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


async def wait_for_receipts(ctx: Context, mailbox_id: int, count: int) -> None:
    """Until the mailbox has `count` receipts; the database may be down meanwhile."""
    for _ in range(30 * 20):
        with contextlib.suppress(Transient):
            if len(await receipts_of(ctx, mailbox_id)) >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} message(s) taken within 30 s")


async def each_message_once(ctx: Context, mailbox_id: int, subjects: list[str]) -> None:
    """Every delivered message is one receipt and one issue, the receipt's; none quarantined."""
    expected = sorted(f"{s.replace(' ', '-')}@example.net" for s in subjects)
    receipts = await receipts_of(ctx, mailbox_id)
    assert sorted(r.message_id or "" for r in receipts) == expected
    assert [r for r in receipts if r.status != "created"] == []
    async with ctx.db.session() as session:
        issues = (await session.execute(sa.select(Issue.id, Issue.source_message_id))).all()
    assert sorted(m or "" for _id, m in issues) == expected
    assert {r.issue_id for r in receipts} == {i for i, _m in issues}


async def status_of(ctx: Context, mailbox_id: int) -> str:
    async with ctx.db.session() as session:
        row = await session.get(Mailbox, mailbox_id, populate_existing=True)
        assert row is not None
        return row.status


@contextmanager
def running(ctx: Context) -> Iterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_mailbox(ctx, "support", stop, backoff=Backoff(base=0.2, cap=1.0))
    )
    try:
        yield task
    finally:
        stop.set()
        task.cancel()


@pytest.mark.parametrize("outage", ["restart", "down for a while"])
async def test_postgresql_lost_in_the_middle_of_a_batch(
    live: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postgres_server: Postgres,
    outage: str,
) -> None:
    subjects = [f"request {i}" for i in range(MESSAGES)]
    for subject in subjects:
        dovecot.deliver(ALICE, message(subject))
    row = await with_mailbox(live, emulator, dovecot, backlog="all", poll_seconds=3600)

    def fault() -> None:
        if outage == "restart":
            postgres_server.restart("immediate")  # a crash and a quick restart
        else:
            postgres_server.pause("immediate")
            threading.Timer(OUTAGE_SECONDS, postgres_server.resume).start()

    with (
        structlog.testing.capture_logs() as logs,
        when_issue_is_written(MESSAGES // 3, fault) as faulted,
        running(live) as loop,
    ):
        await wait_until(faulted.is_set)
        await wait_for_receipts(live, row.id, MESSAGES)
        # Back in IDLE without help: new mail is taken as it comes.
        await wait_until(lambda: not loop.done())
        await asyncio.to_thread(dovecot.deliver, ALICE, message("after the outage"))
        await wait_for_receipts(live, row.id, MESSAGES + 1)
        assert not loop.done()
    await each_message_once(live, row.id, [*subjects, "after the outage"])
    said = [e for e in logs if "database server failed" in str(e.get("error", ""))]
    assert said, logs
    assert await status_of(live, row.id) == "idle"
