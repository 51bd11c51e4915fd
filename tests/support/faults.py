"""A mailbox loop running against the test Dovecot while its database fails: the loop, waits
that survive the database being down, and what must hold afterwards (every message once)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import sqlalchemy as sa

from mailgate.backoff import Backoff
from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.runtime.imap_mailbox import receipts_of, run_mailbox
from mailgate.store.models import Issue, Mailbox

WAIT_SECONDS = 30


def message_id(subject: str) -> str:
    """The Message-ID `tests.support.mail.message` gives a subject."""
    return f"{subject.replace(' ', '-')}@example.net"


@asynccontextmanager
async def loop_running(ctx: Context, name: str = "support") -> AsyncIterator[asyncio.Task[None]]:
    """`run_mailbox` for the mailbox, reconnecting quickly (backoff from 0.2 s up to 1 s)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_mailbox(ctx, name, stop, backoff=Backoff(base=0.2, cap=1.0)))
    try:
        yield task
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(
    probe: Callable[[], Awaitable[bool]], what: str, seconds: int = WAIT_SECONDS
) -> None:
    """Until `probe` says yes; the database may fail meanwhile (a failed look is a no)."""
    for _ in range(seconds * 20):
        with contextlib.suppress(MailgateError):
            if await probe():
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}; the tasks then:\n{_task_stacks()}")


def _task_stacks() -> str:
    """Where each task of the event loop waits (its chain of awaits, outermost first): what a
    loop that stopped moving is stuck on."""
    lines = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        lines.append(f"{task.get_name()}:")
        awaiting: Any = task.get_coro()
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "gi_frame", None)
            if frame is None:
                lines.append(f"  awaiting {awaiting!r}"[:300])
                break
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
            awaiting = getattr(awaiting, "cr_await", None) or getattr(
                awaiting, "gi_yieldfrom", None
            )
    return "\n".join(lines)


async def wait_until(check: Callable[[], bool], what: str) -> None:
    async def probe() -> bool:
        return check()

    await eventually(probe, what)


async def wait_for_receipts(
    ctx: Context, mailbox_id: int, count: int, seconds: int = WAIT_SECONDS
) -> None:
    async def taken() -> bool:
        return len(await receipts_of(ctx, mailbox_id)) >= count

    await eventually(taken, f"{count} message(s) taken", seconds)


async def wait_for_status(ctx: Context, mailbox_id: int, status: str) -> None:
    async def reached() -> bool:
        return await status_of(ctx, mailbox_id) == status

    await eventually(reached, f"the mailbox {status!r}")


async def status_of(ctx: Context, mailbox_id: int) -> str:
    async with ctx.db.session() as session:
        row = await session.get(Mailbox, mailbox_id, populate_existing=True)
        assert row is not None
        return row.status


async def each_message_once(ctx: Context, mailbox_id: int, subjects: list[str]) -> None:
    """Every delivered message is one receipt and one issue, the receipt's; none quarantined."""
    expected = sorted(message_id(subject) for subject in subjects)
    receipts = await receipts_of(ctx, mailbox_id)
    assert sorted(r.message_id or "" for r in receipts) == expected
    assert [(r.message_id, r.status, r.reason) for r in receipts if r.status != "created"] == []
    async with ctx.db.session() as session:
        issues = (await session.execute(sa.select(Issue.id, Issue.source_message_id))).all()
    assert sorted(m or "" for _id, m in issues) == expected
    assert {r.issue_id for r in receipts} == {i for i, _m in issues}


def logged(logs: Sequence[Mapping[str, Any]], words: str) -> bool:
    """Whether a captured log line's error says `words`."""
    return any(words in str(entry.get("error", "")) for entry in logs)


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
