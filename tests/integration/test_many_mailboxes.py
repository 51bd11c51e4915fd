"""One worker with many IDLE mailboxes at a real Dovecot: all of them connect (paced) and IDLE,
and a message delivered to each is taken from each, once. The short variant of
bench/idle_scale.py, which runs a thousand."""

from __future__ import annotations

import asyncio
import smtplib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.support.dovecot import Dovecot
from tests.support.mail import message

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.models import Mailbox, Receipt
from mailgate.store.vocabulary import MailboxStatus
from mailgate.tracker.service import add_project

MAILBOXES = 50
PASSWORD = "many-password"


def user(number: int) -> str:
    return f"box{number:02d}@example.test"


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Context]:
    """A context on the real clock and real sleep, like a running process."""
    ctx = Context.open(settings)
    yield ctx
    await ctx.close()


async def count_by(ctx: Context, column: object) -> Counter[object]:
    async with ctx.db.session() as session:
        rows = await session.execute(select(column, func.count()).group_by(column))  # type: ignore[call-overload]
        return Counter({key: count for key, count in rows})


async def wait_for(what: Callable[[], object], seconds: float, say: Callable[[], object]) -> None:
    for _ in range(int(seconds * 10)):
        if await what():  # type: ignore[misc]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {await say()}")  # type: ignore[misc]


async def test_one_worker_idles_on_many_mailboxes_and_takes_a_message_from_each(
    live: Context, dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    dovecot = dovecot_factory(
        users={user(n): PASSWORD for n in range(MAILBOXES)}, max_connections=MAILBOXES + 20
    )
    await add_project(live, "HELP", "Help desk")
    for n in range(MAILBOXES):
        options = MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=dovecot.imaps_port,
            security="ssl",
            username=user(n),
            password=PASSWORD,
            ca_file=str(dovecot.ca_file),
            project="HELP",
            idle=True,
            poll_seconds=3600,  # only IDLE can be quick
        )
        await add_mailbox(live, f"box{n:02d}", options)
    supervisor = Supervisor(live)
    running = asyncio.create_task(supervisor.run())
    try:

        async def all_idle() -> bool:
            # At the server: every session in IDLE; and every status says so.
            statuses = await count_by(live, Mailbox.status)
            return dovecot.sessions_in_idle() == MAILBOXES == statuses[MailboxStatus.IDLE]

        async def say() -> str:
            statuses = await count_by(live, Mailbox.status)
            return f"{dovecot.sessions_in_idle()} in IDLE; statuses {dict(statuses)}"

        await wait_for(all_idle, 60, say)
        assert len(dovecot.doveadm("who").splitlines()) - 1 == MAILBOXES  # a line per user

        def deliver_all() -> None:
            # Over LMTP, as an MTA delivers: one connection (`deliver` runs a process each).
            with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=30) as lmtp:
                for n in range(MAILBOXES):
                    lmtp.sendmail("customer@example.net", [user(n)], message(f"question {n}"))

        await asyncio.to_thread(deliver_all)

        async def all_taken() -> bool:
            return sum((await count_by(live, Receipt.mailbox_id)).values()) >= MAILBOXES

        await wait_for(all_taken, 60, lambda: count_by(live, Receipt.mailbox_id))
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 60)
    taken = await count_by(live, Receipt.mailbox_id)
    assert len(taken) == MAILBOXES and set(taken.values()) == {1}
