"""Writers wait their turn: two `mailgate ingest` at once, and an `ingest` during `mailbox poll`,
all finish, and each message is stored once — also when another process holds SQLite's write
lock longer than one wait of SQLite's own (`store.sqlite.ATTEMPT_SECONDS`)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update
from tests.support.cli import Cli
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, with_mailbox

from mailgate.context import Context
from mailgate.errors import DatabaseBusy
from mailgate.runtime.leases import HEARTBEAT_SECONDS, LEASE_SECONDS
from mailgate.store.models import Project
from mailgate.store.sqlite import ATTEMPT_SECONDS
from mailgate.tracker.service import add_project

MESSAGES = 300
# Longer than SQLite's own wait: a writer that only waited that long would fail.
HELD_SECONDS = ATTEMPT_SECONDS + 3


def request(tag: str, i: int) -> bytes:
    """A customer's new request (senders spread out: each stays under the flood limit)."""
    mail = EmailMessage()
    mail["From"] = f"sender{i % 23}@example.net"
    mail["To"] = ALICE
    mail["Subject"] = f"{tag} request {i}"
    mail["Message-ID"] = f"<{tag}-{i}@example.net>"
    mail.set_content(f"Please help with {tag} {i}.\n" + "Some detail.\n" * 40)
    return bytes(mail)


def write_messages(folder: Path, tag: str, count: int = MESSAGES) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i:04d}.eml").write_bytes(request(tag, i))
    return folder


def mailgate(ctx: Context, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailgate", *args],
        env=Cli(ctx.settings.home).env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return out


@contextmanager
def other_writer_commits_later(ctx: Context) -> Iterator[None]:
    """Another process's write transaction, committed HELD_SECONDS after it began, whatever the
    body does meanwhile."""
    holder = sqlite3.connect(
        ctx.settings.home / "mailgate.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE projects SET name = 'Renamed elsewhere'")

    def commit() -> None:
        holder.execute("COMMIT")
        holder.close()

    timer = threading.Timer(HELD_SECONDS, commit)
    timer.start()
    try:
        yield
    finally:
        timer.join()


def stored(ctx: Context) -> list[tuple[str, int, int]]:
    """(Message-ID, its receipts, issues made from it), for every message taken."""
    with sqlite3.connect(ctx.settings.home / "mailgate.db") as db:
        return db.execute(
            "SELECT r.message_id, count(DISTINCT r.id), count(DISTINCT i.id) FROM receipts r "
            "LEFT JOIN issues i ON i.source_message_id = r.message_id GROUP BY r.message_id"
        ).fetchall()


def once_each(counts: list[tuple[str, int, int]]) -> bool:
    return {(receipts, issues) for _id, receipts, issues in counts} == {(1, 1)}


@pytest.mark.parametrize("projects", [("HELP", "HELP"), ("HELP", "SALES")])
async def test_two_ingests_at_once_both_finish_and_store_each_message_once(
    ctx: Context, tmp_path: Path, projects: tuple[str, str]
) -> None:
    for key in set(projects):
        await add_project(ctx, key, key.title())
    folders = [write_messages(tmp_path / tag, tag) for tag in ("first", "second")]
    with other_writer_commits_later(ctx):
        runs = [
            mailgate(ctx, "ingest", str(folder), "--project", key, "--json")
            for folder, key in zip(folders, projects, strict=True)
        ]
    outputs = [finished(run) for run in runs]
    assert all(f'"created": {MESSAGES}' in out for out in outputs), outputs
    counts = stored(ctx)
    assert len(counts) == 2 * MESSAGES and once_each(counts)


async def test_the_same_files_ingested_twice_at_once_make_each_issue_once(
    ctx: Context, tmp_path: Path
) -> None:
    await add_project(ctx, "HELP", "Help")
    folder = write_messages(tmp_path / "both", "both")
    with other_writer_commits_later(ctx):
        runs = [mailgate(ctx, "ingest", str(folder), "--project", "HELP") for _ in range(2)]
    for run in runs:
        finished(run)
    counts = stored(ctx)
    assert len(counts) == MESSAGES and once_each(counts)


async def test_an_ingest_during_mailbox_poll_both_finish_nothing_duplicated(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, tmp_path: Path
) -> None:
    for i in range(MESSAGES // 2):
        dovecot.deliver(ALICE, request("mailbox", i))
    await with_mailbox(ctx, emulator, dovecot)  # project HELP, the mail above as its backlog
    folder = write_messages(tmp_path / "files", "files")
    with other_writer_commits_later(ctx):
        runs = [
            mailgate(ctx, "mailbox", "poll", "support"),
            mailgate(ctx, "ingest", str(folder), "--project", "HELP"),
        ]
    for run in runs:
        finished(run)
    counts = stored(ctx)
    assert len(counts) == MESSAGES + MESSAGES // 2 and once_each(counts)
    again = mailgate(ctx, "mailbox", "poll", "support")
    finished(again)
    assert len(stored(ctx)) == MESSAGES + MESSAGES // 2


async def rename(ctx: Context, name: str) -> None:
    async with ctx.db.session() as session:
        await session.execute(update(Project).values(name=name))
        await session.commit()


def test_a_lease_heartbeat_gives_up_before_its_lease_runs_out() -> None:
    # A heartbeat (a task a command starts) makes one attempt at the lock: it fails, and the
    # lease holder stops, while the lease still runs.
    assert HEARTBEAT_SECONDS + ATTEMPT_SECONDS < LEASE_SECONDS


async def test_a_command_waits_its_turn_while_the_tasks_it_starts_give_up(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help")
    ctx.db.wait_turn()
    with other_writer_commits_later(ctx):
        with pytest.raises(DatabaseBusy, match="Another mailgate process"):
            await asyncio.create_task(rename(ctx, "From a heartbeat"))
        await rename(ctx, "From the command")  # waits for the other transaction to commit
    async with ctx.db.session() as session:
        assert await session.scalar(select(Project.name)) == "From the command"


async def test_a_session_that_read_first_still_waits_to_write(ctx: Context) -> None:
    # In WAL mode a read transaction that turns into a write fails at once, without waiting,
    # when another process wrote meanwhile: sessions must not read inside such a transaction.
    await add_project(ctx, "HELP", "Help")
    ctx.db.wait_turn()
    async with ctx.db.session() as session:
        assert await session.scalar(select(Project.name)) == "Help"
        with other_writer_commits_later(ctx):
            await session.execute(update(Project).values(name="After reading"))
            await session.commit()
    async with ctx.db.session() as session:
        assert await session.scalar(select(Project.name)) == "After reading"


async def test_a_write_transaction_waits_its_turn(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help")
    with other_writer_commits_later(ctx):
        names = await ctx.db.run(lambda session: list(session.scalars(select(Project.name))))
    assert names == ["Renamed elsewhere"]  # begun after the other transaction committed
