"""Writers wait their turn: two `mailgate ingest` at once, and an `ingest` during `mailbox poll`,
all finish, and each message is stored once — also when another process holds SQLite's write
lock longer than one wait of SQLite's own (`store.sqlite.ATTEMPT_SECONDS`), and on PostgreSQL,
where the writers truly run at once, when another transaction holds the project's row."""

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

import psycopg
import pytest
from sqlalchemy import select, text, update
from tests.support.cli import Cli
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential, reload
from tests.support.mail import ALICE, with_mailbox

from mailgate.context import Context
from mailgate.errors import DatabaseBusy
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime.leases import LEASE_SECONDS, heartbeat
from mailgate.store.models import Project
from mailgate.store.sqlite import ATTEMPT_SECONDS
from mailgate.tracker.service import add_project

MESSAGES = 300
# Longer than SQLite's own wait: a writer that only waited that long would fail.
HELD_SECONDS = ATTEMPT_SECONDS + 3
# PostgreSQL has no such wait to outlast: a row lock is waited for as long as it is held.
HELD_SECONDS_POSTGRESQL = 1.0


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
        env={**Cli(ctx.settings.home).env, "MAILGATE_DATABASE_URL": ctx.settings.database_url},
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
def other_writer_commits_later(ctx: Context, seconds: float = HELD_SECONDS) -> Iterator[None]:
    """Another process's write transaction, committed `seconds` after it began, whatever the
    body does meanwhile (on PostgreSQL, `HELD_SECONDS_POSTGRESQL`)."""
    holder: sqlite3.Connection | psycopg.Connection[tuple[object, ...]]
    if ctx.db.dialect == "postgresql":
        holder = psycopg.connect(ctx.settings.database_url.replace("+psycopg", ""))
        seconds = HELD_SECONDS_POSTGRESQL
    else:
        holder = sqlite3.connect(
            ctx.settings.home / "mailgate.db", isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE projects SET name = 'Renamed elsewhere'")

    def commit() -> None:
        if isinstance(holder, psycopg.Connection):
            holder.commit()
        else:
            holder.execute("COMMIT")
        holder.close()

    timer = threading.Timer(seconds, commit)
    timer.start()
    try:
        yield
    finally:
        timer.join()


async def stored(ctx: Context) -> list[tuple[str, int, int]]:
    """(Message-ID, its receipts, issues made from it), for every message taken."""
    query = text(
        "SELECT r.message_id, count(DISTINCT r.id), count(DISTINCT i.id) FROM receipts r "
        "LEFT JOIN issues i ON i.source_message_id = r.message_id GROUP BY r.message_id"
    )
    rows = await ctx.db.read(lambda session: session.execute(query).all())
    return [(message_id, receipts, issues) for message_id, receipts, issues in rows]


def once_each(counts: list[tuple[str, int, int]]) -> bool:
    return {(receipts, issues) for _id, receipts, issues in counts} == {(1, 1)}


@pytest.fixture
def messages(store: str) -> int:
    """How many messages each writer takes: on PostgreSQL fewer do (nothing there waits a turn
    of seconds, so fewer still overlap)."""
    return MESSAGES if store == "sqlite" else MESSAGES // 3


@pytest.mark.parametrize("projects", [("HELP", "HELP"), ("HELP", "SALES")])
async def test_two_ingests_at_once_both_finish_and_store_each_message_once(
    ctx: Context, tmp_path: Path, projects: tuple[str, str], messages: int
) -> None:
    for key in set(projects):
        await add_project(ctx, key, key.title())
    folders = [write_messages(tmp_path / tag, tag, messages) for tag in ("first", "second")]
    with other_writer_commits_later(ctx):
        runs = [
            mailgate(ctx, "ingest", str(folder), "--project", key, "--json")
            for folder, key in zip(folders, projects, strict=True)
        ]
    outputs = [finished(run) for run in runs]
    assert all(f'"created": {messages}' in out for out in outputs), outputs
    counts = await stored(ctx)
    assert len(counts) == 2 * messages and once_each(counts)


@pytest.mark.stores("sqlite", "postgresql")
async def test_the_same_files_ingested_twice_at_once_make_each_issue_once(
    ctx: Context, tmp_path: Path, messages: int
) -> None:
    await add_project(ctx, "HELP", "Help")
    folder = write_messages(tmp_path / "both", "both", messages)
    with other_writer_commits_later(ctx):
        runs = [mailgate(ctx, "ingest", str(folder), "--project", "HELP") for _ in range(2)]
    for run in runs:
        finished(run)
    counts = await stored(ctx)
    assert len(counts) == messages and once_each(counts)


async def test_an_ingest_during_mailbox_poll_both_finish_nothing_duplicated(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, tmp_path: Path, messages: int
) -> None:
    for i in range(messages // 2):
        dovecot.deliver(ALICE, request("mailbox", i))
    await with_mailbox(ctx, emulator, dovecot)  # project HELP, the mail above as its backlog
    folder = write_messages(tmp_path / "files", "files", messages)
    with other_writer_commits_later(ctx):
        runs = [
            mailgate(ctx, "mailbox", "poll", "support"),
            mailgate(ctx, "ingest", str(folder), "--project", "HELP"),
        ]
    for run in runs:
        finished(run)
    counts = await stored(ctx)
    assert len(counts) == messages + messages // 2 and once_each(counts)
    again = mailgate(ctx, "mailbox", "poll", "support")
    finished(again)
    assert len(await stored(ctx)) == messages + messages // 2


async def rename(ctx: Context, name: str) -> None:
    async with ctx.db.session() as session:
        await session.execute(update(Project).values(name=name))
        await session.commit()


async def test_every_task_waits_its_turn(ctx: Context) -> None:
    # The supervisor's loops, each web request and each token refresh run in tasks of their
    # own: none of them may fail because another process writes for longer than SQLite waits.
    await add_project(ctx, "HELP", "Help")
    with other_writer_commits_later(ctx):
        await asyncio.create_task(rename(ctx, "From a task"))
    async with ctx.db.session() as session:
        assert await session.scalar(select(Project.name)) == "From a task"


async def test_more_writers_at_once_than_connections_all_wait_their_turn(ctx: Context) -> None:
    # Each writer waiting for the lock holds a connection of the pool; those past the pool's
    # size wait for a connection as long as for the lock (SQLAlchemy's own wait is 30 s).
    await add_project(ctx, "HELP", "Help")
    with other_writer_commits_later(ctx, seconds=30 + 3):
        await asyncio.gather(*(rename(ctx, f"Writer {i}") for i in range(20)))
    async with ctx.db.session() as session:
        assert (await session.scalar(select(Project.name)) or "").startswith("Writer")


async def test_a_task_that_must_stop_in_time_makes_one_attempt(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help")

    async def heartbeat_write() -> None:
        ctx.db.write_once()
        await rename(ctx, "From a heartbeat")

    with other_writer_commits_later(ctx):
        with pytest.raises(DatabaseBusy, match="Another mailgate process"):
            await asyncio.create_task(heartbeat_write())
        await rename(ctx, "From the command")  # waits for the other transaction to commit
    async with ctx.db.session() as session:
        assert await session.scalar(select(Project.name)) == "From the command"


async def test_a_token_refresh_waits_its_turn(ctx: Context, emulator: RunningEmulator) -> None:
    # The provider has issued the new refresh token by the time it is stored: a refresh that
    # gave up storing it would lose the grant of a provider that rotates refresh tokens.
    setup = await microsoft_credential(ctx, emulator)
    with other_writer_commits_later(ctx):
        token = await TokenKeeper(ctx).refresh(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert stored.access_token_enc is not None and stored.refresh_token_enc is not None
    assert ctx.secrets.decrypt(stored.access_token_enc) == token.value
    assert ctx.secrets.decrypt(stored.refresh_token_enc) != setup.grant.refresh_token


class Lease:
    """A heartbeat's world in fake time: each renewal takes the time `script` says, and ends
    with the lease renewed (True), refused (False) or a failure (None)."""

    def __init__(self, script: list[tuple[float, bool | None]]) -> None:
        self.now = 0.0
        self.script = iter(script)
        self.until = LEASE_SECONDS  # the claim that took the lease began at 0
        self.stopped_at: float | None = None

    async def renew(self, within: float) -> bool:
        started = self.now
        takes, result = next(self.script)
        self.now += min(takes, within)
        if takes > within:
            raise TimeoutError
        if result is None:
            raise DatabaseBusy("Another mailgate process has held the database.")
        if result:
            self.until = started + LEASE_SECONDS  # a claim's lease runs from its start
        return result

    def stop(self) -> None:
        self.stopped_at = self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    "script",
    [
        [(0.1, True), (0.1, True), (0.1, False)],  # another process took the mailbox
        [(4.5, True), (ATTEMPT_SECONDS, None), (ATTEMPT_SECONDS, None)],  # renewed late, then busy
        [(0.1, None), (ATTEMPT_SECONDS, None), (ATTEMPT_SECONDS, None)],  # a blip, then busy
        [(0.1, True), (60.0, True), (0.1, True)],  # a renewal that hangs (a PostgreSQL row lock)
    ],
)
async def test_a_heartbeat_stops_its_holder_while_the_lease_still_runs(
    script: list[tuple[float, bool | None]],
) -> None:
    lease = Lease(script)
    await heartbeat(lease.renew, lease.stop, 0.0, clock=lambda: lease.now, sleep=lease.sleep)
    assert lease.stopped_at is not None and lease.stopped_at < lease.until


async def test_a_session_that_read_first_still_waits_to_write(ctx: Context) -> None:
    # In WAL mode a read transaction that turns into a write fails at once, without waiting,
    # when another process wrote meanwhile: sessions must not read inside such a transaction.
    await add_project(ctx, "HELP", "Help")
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
