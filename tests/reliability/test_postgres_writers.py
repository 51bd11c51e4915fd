"""Writers at once on PostgreSQL, where nothing makes them take turns as SQLite's write lock does:
one message taken by two transactions at the same moment — a file ingested by two processes, a
message copied to two mailboxes read by two workers — is one issue; the second transaction waits
for the first and finds the message taken."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox, destination_of
from mailgate.store.models import Issue, Receipt
from mailgate.tracker.service import add_project

pytestmark = pytest.mark.stores("postgresql")

HELP = Destination(project="HELP", own_addresses=("support@example.com",))


def request(
    subject: str = "The printer is on fire", message_id: str = "fire", to: str = "support"
) -> bytes:
    mail = EmailMessage()
    mail["Delivered-To"] = f"{to}@example.com"  # each mailbox's copy has its own
    mail["From"] = "carol@example.net"
    mail["To"] = "support@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{message_id}@example.net>"
    mail.set_content("It is burning.")
    return bytes(mail)


@contextmanager
def first_issue_waits_for_a_second_writer(ctx: Context) -> Iterator[None]:
    """The first transaction to write an issue stops just before it until another transaction
    of the database waits for a lock (held by this one), so both are in flight at once — or, if
    the other never waits, for 10 s, by when the other is done."""
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    dsn = ctx.settings.database_url.replace("+psycopg", "")
    held = threading.Event()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("INSERT INTO ISSUES") or held.is_set():
            return
        held.set()
        with psycopg.connect(dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 10  # then on: the second writer did not wait
            while watcher.execute(waiting).fetchone() != (1,) and time.monotonic() < deadline:
                time.sleep(0.02)

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)


async def issues_and_receipts(ctx: Context) -> tuple[list[str | None], list[tuple[str, bool]]]:
    async with ctx.db.session() as session:
        issues = (await session.scalars(sa.select(Issue.source_message_id))).all()
        receipts = (await session.execute(sa.select(Receipt.status, Receipt.issue_id))).all()
    return list(issues), [(status, issue is not None) for status, issue in receipts]


async def test_a_file_ingested_twice_at_once_is_one_receipt_and_one_issue(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help")
    raw = request()
    with first_issue_waits_for_a_second_writer(ctx):
        taken = await asyncio.gather(
            *(
                pipeline.take(ctx, None, pipeline.MessageRef(), raw, destination=HELP)
                for _ in range(2)
            )
        )
    assert sorted(t.new for t in taken) == [False, True]
    assert await issues_and_receipts(ctx) == (["fire@example.net"], [("created", True)])


async def test_one_message_in_two_mailboxes_taken_at_once_is_one_issue(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help")
    mailboxes = [
        (
            await add_mailbox(
                ctx,
                name,
                MailboxOptions(
                    protocol="imap",
                    host="127.0.0.1",
                    username=f"{name}@example.com",
                    password="pw",
                    project="HELP",
                ),
            )
        )[0]
        for name in ("support", "sales")
    ]
    # Carol wrote before: her row exists, and nothing else of hers makes the writers wait.
    earlier = request("Toner low", "toner")
    await pipeline.take(ctx, None, pipeline.MessageRef(), earlier, destination=HELP)
    with first_issue_waits_for_a_second_writer(ctx):
        taken = await asyncio.gather(
            *(
                pipeline.take(
                    ctx,
                    m.id,
                    pipeline.MessageRef(uidvalidity=1, uid=1),
                    request(to=m.name),
                    destination=destination_of(m),
                )
                for m in mailboxes
            )
        )
    assert all(t.new for t in taken)  # each mailbox's copy has its receipt
    issues, receipts = await issues_and_receipts(ctx)
    assert sorted(issues, key=str) == ["fire@example.net", "toner@example.net"]
    assert sorted(receipts) == [("created", True), ("created", True), ("duplicate", True)]
