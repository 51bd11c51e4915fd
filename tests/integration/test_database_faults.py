"""A broken or unusable SQLite database: one sentence on stderr, the documented exit status, no
traceback, and the files left as they were found. A database that becomes read-only or full
under a running mailbox loop: nothing lost, the log says why, the loop goes on once it is over
(PostgreSQL's faults: test_postgres_faults.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session
from tests.support.cli import Cli, Result
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.faults import (
    each_message_once,
    logged,
    loop_running,
    wait_for_receipts,
    wait_for_status,
    wait_until,
)
from tests.support.mail import ALICE, message, with_mailbox

from mailgate.context import Context
from mailgate.errors import MailgateError, OperationFailed
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.runtime import leases, supervisor
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.models import Mailbox, Project
from mailgate.tracker.service import add_project

# Root may write to read-only files: the command runs without that privilege (as any user
# would), so that a read-only file is read-only for it too.
WITHOUT_ROOT_OVERRIDE = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)


def mailgate(home: Path, *args: str, **env: str) -> Result:
    if WITHOUT_ROOT_OVERRIDE:
        assert shutil.which("setpriv"), "setpriv (util-linux) runs the command without root"
    done = subprocess.run(
        [*WITHOUT_ROOT_OVERRIDE, sys.executable, "-m", "mailgate", *args],
        env={**Cli(home).env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry of `folder`: its mode and, for a file, its bytes."""
    return {
        entry.name: (entry.stat().st_mode, entry.read_bytes() if entry.is_file() else None)
        for entry in sorted(folder.iterdir())
    }


def one_sentence(result: Result, code: int, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code == code and len(lines) == 1, result.stderr
    assert lines[0].startswith("mailgate: ") and lines[0].endswith("."), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "database server" not in lines[0]
    assert result.stdout == ""


@pytest.fixture
def made(cli: Cli, home: Path) -> Path:
    """A database mailgate made and filled: a project and a few issues."""
    assert cli("project", "add", "HELP", "--name", "Help").code == 0
    mail = home.parent / "mail"
    mail.mkdir()
    for i in range(40):
        (mail / f"{i}.eml").write_text(
            f"From: c{i}@example.net\nSubject: request {i}\nMessage-ID: <r{i}@example.net>\n\n"
            + "text\n" * 200
        )
    assert cli("ingest", str(mail), "--project", "HELP").code == 0
    return home / "mailgate.db"


def test_a_file_of_random_bytes(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "mailgate.db").write_bytes(os.urandom(64 * 1024))
    before = snapshot(home)
    one_sentence(mailgate(home, "project", "list"), 1, "is not an SQLite database", "backup")
    assert snapshot(home) == before


def test_a_database_cut_to_half(home: Path, made: Path) -> None:
    with made.open("r+b") as fh:
        fh.truncate(made.stat().st_size // 2)
    before = snapshot(home)
    one_sentence(mailgate(home, "issue", "list"), 1, "is damaged", "restore")
    assert snapshot(home) == before


def test_a_read_only_database_file(home: Path, made: Path) -> None:
    made.chmod(0o400)
    before = snapshot(home)
    result = mailgate(home, "project", "add", "SALES", "--name", "Sales")
    one_sentence(result, 2, str(made), "read-only", "write access")
    assert snapshot(home) == before


@pytest.mark.parametrize("side", ["-wal", "-shm"])
def test_a_side_file_this_user_cannot_open(home: Path, made: Path, side: str) -> None:
    # The database itself is fine: the sentence must name the file that is not.
    path = made.with_name(made.name + side)
    path.write_bytes(b"")
    path.chmod(0)
    before = snapshot(home)
    one_sentence(mailgate(home, "project", "list"), 2, str(path), "write access")
    assert snapshot(home) == before


def test_a_read_only_data_folder(home: Path, made: Path) -> None:
    home.chmod(0o500)
    try:
        before = snapshot(home)
        one_sentence(mailgate(home, "project", "list"), 2, str(home), "write")
        assert snapshot(home) == before
    finally:
        home.chmod(0o700)


def test_a_read_only_folder_of_a_database_elsewhere(home: Path, made: Path, tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    moved = folder / "desk.db"
    made.rename(moved)
    folder.chmod(0o500)
    try:
        before = snapshot(folder)
        result = mailgate(home, "project", "list", MAILGATE_DATABASE_URL=f"sqlite:///{moved}")
        one_sentence(result, 2, str(folder), "-wal", "write access")
        assert snapshot(folder) == before
    finally:
        folder.chmod(0o700)


def test_a_missing_folder(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    result = mailgate(
        home, "project", "list", MAILGATE_DATABASE_URL=f"sqlite:///{missing / 'mailgate.db'}"
    )
    one_sentence(result, 2, str(missing), "does not exist")
    assert not (tmp_path / "no").exists()


def test_a_folder_where_the_file_should_be(home: Path) -> None:
    (home / "mailgate.db").mkdir(parents=True)
    before = snapshot(home)
    one_sentence(mailgate(home, "project", "list"), 2, "is a folder", "MAILGATE_DATABASE_URL")
    assert snapshot(home) == before


@pytest.mark.parametrize("command", [["migrate"], ["issue", "list", "--json"]])
def test_every_entry_point_says_it_in_one_sentence(home: Path, command: list[str]) -> None:
    home.mkdir(mode=0o700)
    (home / "mailgate.db").write_bytes(b"not a database at all" * 100)
    one_sentence(mailgate(home, *command), 1, "is not an SQLite database")


def test_damage_found_in_the_middle_of_a_command(home: Path, made: Path) -> None:
    # The schema and the migrations' table are intact, so the command starts; the issues'
    # table is overwritten, and reading it is the first to find out.
    with sqlite3.connect(made) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'issues'").fetchone()[0]
    db.close()
    with made.open("r+b") as fh:
        fh.seek((root - 1) * page_size)  # pages are numbered from 1
        fh.write(os.urandom(page_size))
    assert mailgate(home, "project", "list").code == 0  # it does not read the issues
    one_sentence(mailgate(home, "issue", "list", "--json"), 1, "is damaged", "restore")


# SQLite undoes the whole transaction by itself after some errors — a full disk, a disk error
# (https://www.sqlite.org/lang_transaction.html#response_to_errors_within_a_transaction). This
# trigger does the same on demand: RAISE(ROLLBACK) ends the transaction, as a full disk would.
UNDOES_THE_TRANSACTION = (
    "CREATE TEMP TRIGGER undo BEFORE INSERT ON projects WHEN NEW.key = 'FULL' "
    "BEGIN SELECT RAISE(ROLLBACK, 'undone as by a full disk'); END"
)


def add(session: Session, key: str) -> None:
    session.add(Project(key=key, name=key.title()))
    session.flush()


def write_on_after_one_failure(session: Session) -> None:
    """A batch whose one item fails in its savepoint, the rest going on (as the pipeline does:
    one message's failure must not stop a mailbox)."""
    session.execute(sa.text(UNDOES_THE_TRANSACTION))
    add(session, "FIRST")
    with contextlib.suppress(sa.exc.SQLAlchemyError, MailgateError), session.begin_nested():
        add(session, "FULL")
    add(session, "AFTER")


async def test_a_transaction_sqlite_undid_stores_nothing_of_what_follows(ctx: Context) -> None:
    with pytest.raises(OperationFailed, match="undid the transaction"):
        await ctx.db.run(write_on_after_one_failure)
    async with ctx.db.session() as session:
        assert (await session.scalars(sa.select(Project.key))).all() == []


async def test_an_async_session_sqlite_undid_stores_nothing_of_what_follows(ctx: Context) -> None:
    async with ctx.db.session() as session:
        with pytest.raises(OperationFailed, match="undid the transaction"):
            await session.run_sync(write_on_after_one_failure)
            await session.commit()
    async with ctx.db.session() as session:
        assert (await session.scalars(sa.select(Project.key))).all() == []


async def a_mailbox(ctx: Context) -> Mailbox:
    await add_project(ctx, "HELP", "Help")
    options = MailboxOptions(
        protocol="imap",
        host="127.0.0.1",
        username="desk@example.com",
        password="pw",
        project="HELP",
    )
    mailbox, _warnings = await add_mailbox(ctx, "support", options)
    return mailbox


async def test_a_mailbox_loop_the_database_stops_says_why_in_the_log(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 3 a.m. with a full disk, `serve` must say so, not restart the loop in silence.
    full = OperationFailed("The disk holding the SQLite database is full: free some space.")

    async def loop_that_meets_a_full_disk(*_args: object, **_kwargs: object) -> None:
        raise full

    monkeypatch.setattr(supervisor, "run_mailbox", loop_that_meets_a_full_disk)
    mailbox = await a_mailbox(ctx)
    with structlog.testing.capture_logs() as logs:
        await Supervisor(ctx)._run_mailbox(mailbox)
    said = [entry for entry in logs if entry.get("mailbox") == "support"]
    assert said and str(full) in str(said), logs


async def test_a_mailbox_another_process_reads_is_left_to_it_quietly(ctx: Context) -> None:
    mailbox = await a_mailbox(ctx)
    async with leases.holding(ctx, mailbox.id, "another process"):
        with structlog.testing.capture_logs() as logs:
            await Supervisor(ctx)._run_mailbox(mailbox)
    assert logs == []


# SQLite's own refusals, on every connection of the process from the next statement on: a full
# disk (SQLITE_FULL once the file would grow; max_page_count is never set below the file's size,
# so 1 means "as it is now") and a read-only database (SQLITE_READONLY, as a file the process
# may no longer write: as root, a file's mode would not stop it).
FAULTS = {
    "disk full": ("PRAGMA max_page_count = 1", "PRAGMA max_page_count = 1073741823", "is full"),
    "read-only": ("PRAGMA query_only = 1", "PRAGMA query_only = 0", "cannot be opened for writing"),
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_database_full_or_read_only_under_a_mailbox_loop(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot, fault: str
) -> None:
    begins, ends, said = FAULTS[fault]
    pragma = {"now": ends}

    def before(_conn: Any, cursor: Any, *_args: Any) -> None:
        cursor.execute(pragma["now"])

    row = await with_mailbox(live, emulator, dovecot, poll_seconds=3600)
    subjects = [f"while {fault} {i}" for i in range(3)]
    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    try:
        with structlog.testing.capture_logs() as logs:
            async with loop_running(live) as loop:
                await wait_for_status(live, row.id, "idle")
                pragma["now"] = begins
                for subject in subjects:
                    # A few kilobytes each: the messages need pages the file does not have.
                    await asyncio.to_thread(dovecot.deliver, ALICE, message(subject, 8000))
                await wait_until(lambda: logged(logs, said), f"the log says {said!r}")
                pragma["now"] = ends
                await wait_for_receipts(live, row.id, len(subjects))
                await wait_for_status(live, row.id, "idle")
                assert not loop.done()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)
    await each_message_once(live, row.id, subjects)
