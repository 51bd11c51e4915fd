"""SQLite as mailgate uses it: writers that wait their turn, its file checked before use, and
its errors said in one sentence.

Waiting for the write lock. One writer at a time holds SQLite's write lock (WAL lets readers go
on meanwhile). Every transaction that writes takes the lock with BEGIN IMMEDIATE before its
first statement, and a BEGIN that finds the lock taken is tried again until the lock is free:
each attempt waits up to `ATTEMPT_SECONDS` in SQLite's busy handler (which sleeps between its
tries), then the next attempt follows, for up to `LOCK_PATIENCE` in all, after which one
sentence says another process holds the database. Only BEGIN is ever retried — nothing of the
transaction ran yet — and since the lock is held from the start, no later statement can meet a
busy database: in WAL mode a read transaction that turns into a write fails at once with
SQLITE_BUSY, without waiting, whenever another process wrote meanwhile.

- The synchronous engine (the write path: `Database.run`, migrations) begins every transaction
  that way; it waits up to `LOCK_PATIENCE`, or until nobody awaits the result any more.
- The async engine keeps the sqlite3 module's transactions: reads run outside a transaction and
  hold no lock (a session that reads while it awaits the network blocks nobody), and the first
  write of a session begins the transaction — with BEGIN IMMEDIATE, retried the same way. Every
  task waits so: a command, the supervisor's loops, a web request, a token refresh (whose new
  refresh token must not be lost). Only a task that must give up in time says so
  (`write_once`): the heartbeat of a mailbox's lease makes one attempt, so that the loop it
  guards stops before its lease runs out and another process may take the mailbox.

A transaction SQLite undid. After some errors (a full disk, a disk error) SQLite rolls the whole
transaction back by itself (https://www.sqlite.org/lang_transaction.html, "Response To Errors
Within A Transaction"). A caller that goes on after such an error — the pipeline does, so that
one message's failure does not stop a mailbox — would then write the rest outside any
transaction, each statement committed alone: a receipt without its issue. So once a
transaction has taken the lock, every later statement and its commit first check that SQLite
still holds the transaction, and fail with that error's sentence if not.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, NoReturn

import sqlalchemy as sa

from mailgate.backoff import delay
from mailgate.errors import (
    BadInput,
    DatabaseBusy,
    DatabaseDamaged,
    MailgateError,
    OperationFailed,
)

ATTEMPT_SECONDS = 5.0  # SQLite's own wait for the lock (busy_timeout), per attempt
LOCK_PATIENCE = 120.0  # how long a write transaction waits its turn in all
RETRY_BASE = 0.05  # backoff between attempts: 50 ms, doubling, at most 1 s, with jitter
RETRY_CAP = 1.0

# Set by `Database.run` in the thread that runs a transaction: set once nobody awaits it any
# more (the task was cancelled), so that its BEGIN stops waiting for the lock.
abandoned: ContextVar[threading.Event | None] = ContextVar("abandoned", default=None)
# True in a task whose async writes make one attempt at the lock (`write_once`); a task copies
# its creator's value, and sets its own.
_one_attempt: ContextVar[bool] = ContextVar("one_attempt", default=False)
# Where a connection notes that its transaction holds the write lock, and the error that made
# SQLite undo it.
_LOCKED_KEY = "mailgate.sqlite.locked"
_UNDONE_KEY = "mailgate.sqlite.undone"
# The statements before which the sqlite3 module begins a transaction by itself (Python's
# "legacy transaction control"): the async engine takes the lock there instead.
_BEGINS_A_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def database_path(url: sa.URL) -> Path | None:
    """The file of an SQLite URL; None for an in-memory database."""
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    return Path(name)


def check_file(path: Path) -> None:
    """Refuse, in one sentence, a database file SQLite could not open or write. Changes nothing."""
    folder = path.parent
    if not folder.is_dir():
        raise BadInput(
            f"The folder {folder} of the SQLite database {path.name} does not exist: create it, "
            "or point MAILGATE_DATABASE_URL at a file in an existing folder."
        )
    if path.is_dir():
        raise BadInput(
            f"{path} is a folder where the SQLite database file should be: move that folder "
            "away, or point MAILGATE_DATABASE_URL at a file."
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise BadInput(
            f"The SQLite database {path} is read-only for this user: give the user mailgate runs "
            "as read and write access to it."
        )
    for side in (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")):
        # Left by another user's process (or a copy): SQLite must open them to read at all.
        if side.exists() and not os.access(side, os.R_OK | os.W_OK):
            raise BadInput(
                f"SQLite's file {side} beside the database cannot be read and written by this "
                "user (it may hold changes not yet in the database: never delete it): give the "
                "user mailgate runs as read and write access to it."
            )
    if not os.access(folder, os.W_OK | os.X_OK):
        # SQLite creates its -wal and -shm files beside the database at every start.
        raise BadInput(
            f"The folder {folder} of the SQLite database cannot be written by this user (SQLite "
            "keeps its -wal and -shm files beside the database): give the user mailgate runs as "
            "write access to it."
        )


def on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Pragmas of every connection (both engines)."""
    cursor = dbapi_connection.cursor()
    # First: switching a new database to WAL takes the lock too, and must wait like a write.
    cursor.execute(f"PRAGMA busy_timeout={int(ATTEMPT_SECONDS * 1000)}")
    # WAL lets readers work while one writer commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def transactions_by_us(dbapi_connection: Any, _record: Any) -> None:
    """Synchronous engine: the sqlite3 module would begin a transaction only at the first write
    (reads before it, and savepoints, would run outside any transaction); SQLAlchemy begins it
    instead, with `begin_immediate`."""
    dbapi_connection.isolation_level = None


def begin_immediate(connection: sa.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock (the read-then-write of a transaction — is
    this message known? then record it — cannot interleave with another process's)."""
    driver = _driver(connection)
    wait_for_lock(lambda: driver.execute("BEGIN IMMEDIATE"), abandoned.get())
    _note_locked(connection)


def _driver(connection: sa.Connection) -> Any:
    """The sqlite3 (or aiosqlite) connection under SQLAlchemy's."""
    driver = connection.connection.driver_connection
    assert driver is not None, "a connection in use has its driver's connection"
    return driver


def write_once() -> None:
    """Let the current task's async writes make one attempt at the write lock (SQLite's own
    wait, `ATTEMPT_SECONDS`) instead of waiting their turn: for a task that must give up in
    time. Tasks it starts afterwards do the same."""
    _one_attempt.set(True)


def _lock_before_first_write(
    connection: sa.Connection, cursor: Any, statement: str, *_args: Any
) -> None:
    """Async engine, before each statement: a write that would begin the transaction takes the
    lock first, with BEGIN IMMEDIATE tried again while the task may wait."""
    still_held(connection)
    if not _BEGINS_A_WRITE.match(statement):
        return
    if _driver(connection).in_transaction:
        return  # the lock is held already
    wait_for_lock(
        lambda: cursor.execute("BEGIN IMMEDIATE"),
        patience=0.0 if _one_attempt.get() else LOCK_PATIENCE,
        # The event loop must not sleep here; SQLite's busy handler slept within the attempt.
        sleep=lambda _seconds: None,
    )
    _note_locked(connection)


def _note_locked(connection: sa.Connection) -> None:
    connection.info[_LOCKED_KEY] = True
    connection.info.pop(_UNDONE_KEY, None)


def _transaction_ended(connection: sa.Connection, *_args: Any) -> None:
    """After a commit or a rollback: the connection holds no transaction of ours."""
    if connection.invalidated:
        return  # its driver's connection is closed, its notes with it
    connection.info.pop(_LOCKED_KEY, None)
    connection.info.pop(_UNDONE_KEY, None)


def still_held(connection: sa.Connection, *_args: Any) -> None:
    """Before a statement or a commit: refuse to go on with a transaction SQLite undid (see
    the module's docstring), in the sentence of the error that undid it."""
    if connection.invalidated or not connection.info.get(_LOCKED_KEY):
        return
    if _driver(connection).in_transaction:
        return
    undone = connection.info.get(_UNDONE_KEY)
    _raise(
        type(undone)(str(undone))
        if isinstance(undone, MailgateError)
        else OperationFailed(
            "SQLite undid the transaction after an error, so nothing of it was stored: look "
            "for the error before this one in the log, then try again."
        )
    )


def is_busy(error: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    return isinstance(error, sqlite3.OperationalError) and code in (_BUSY, _LOCKED)


def wait_for_lock(
    begin: Callable[[], object],
    given_up: threading.Event | None = None,
    *,
    patience: float = LOCK_PATIENCE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> None:
    """Call `begin` until it gets the lock: each attempt waits in SQLite, then a backoff; after
    `patience` seconds (or once `given_up` is set) one sentence says who holds the database."""
    rng = rng or random.Random()
    started = clock()
    attempts = 0
    while True:
        try:
            begin()
            return
        except sqlite3.OperationalError as error:
            if not is_busy(error):
                raise
            attempts += 1
            waited = clock() - started
            if waited >= patience or (given_up is not None and given_up.is_set()):
                raise DatabaseBusy(
                    f"Another mailgate process has held the database for {waited:.0f} seconds "
                    "(an import or a migration, maybe): wait for it to finish and run this "
                    "again; nothing was changed."
                ) from None
            sleep(delay(attempts, RETRY_BASE, RETRY_CAP, rng))


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) → what to tell the user.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = (
    3, 5, 6, 8, 10, 11, 13, 14, 26,
)  # fmt: skip


def _explain(code: int, path: str) -> MailgateError | None:
    if code in (_BUSY, _LOCKED):
        return DatabaseBusy(
            f"Another mailgate process kept the database {path} busy for more than "
            f"{ATTEMPT_SECONDS:.0f} seconds: wait for it to finish and try again; nothing was "
            "changed."
        )
    if code == _NOTADB:
        return DatabaseDamaged(
            f"{path} is not an SQLite database (its header is not SQLite's): point "
            "MAILGATE_DATABASE_URL at mailgate's database, or restore the file from a backup; "
            "nothing was changed."
        )
    if code == _CORRUPT:
        return DatabaseDamaged(
            f"The SQLite database {path} is damaged (cut short or overwritten): stop every "
            "mailgate process and restore the file from a backup; nothing was changed."
        )
    if code in (_READONLY, _PERM, _CANTOPEN):
        return BadInput(
            f"The SQLite database {path} cannot be opened for writing: give the user mailgate "
            "runs as write access to the file and its folder; nothing was changed."
        )
    if code == _FULL:
        return OperationFailed(
            f"The disk holding the SQLite database {path} is full: free some space and try "
            "again; nothing was changed."
        )
    if code == _IOERR:
        return OperationFailed(
            f"Reading or writing the SQLite database {path} failed (a disk or file system "
            "error): check the disk and the system log, then try again."
        )
    return None


def error_translator(path: Path | None) -> Callable[[sa.engine.ExceptionContext], None]:
    """A `handle_error` listener: SQLite's errors as mailgate's one-sentence errors."""
    where = str(path) if path is not None else "(in memory)"

    def translate(context: sa.engine.ExceptionContext) -> None:
        error = context.original_exception
        if isinstance(error, sqlite3.Error):
            explained = _explain(getattr(error, "sqlite_errorcode", 0) & 0xFF, where)
            if explained is None:
                return
            connection = context.connection
            if connection is not None and not connection.invalidated:
                # Said again should the caller go on with a transaction this error undid.
                connection.info[_UNDONE_KEY] = explained
            _raise(explained)

    return translate


def _raise(error: MailgateError) -> NoReturn:
    # SQLAlchemy raises what a handle_error listener raises, after its own clean-up.
    raise error from None


Role = Literal["write path", "async", "migrations"]


def tune(engine: sa.Engine, path: Path | None, role: Role) -> None:
    """Install the pragmas, the error sentences and the way `role`'s writes take the lock
    (migrations take it themselves, with `begin_immediate`)."""
    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "handle_error", error_translator(path))
    sa.event.listen(engine, "commit", still_held)
    sa.event.listen(engine, "commit", _transaction_ended)
    sa.event.listen(engine, "rollback", _transaction_ended)
    if role == "write path":
        sa.event.listen(engine, "connect", transactions_by_us)
        sa.event.listen(engine, "begin", begin_immediate)
        sa.event.listen(engine, "before_cursor_execute", still_held)
    elif role == "async":
        sa.event.listen(engine, "before_cursor_execute", _lock_before_first_write)
