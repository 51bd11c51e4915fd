"""Engines, sessions and migrations.

Migrations run with a synchronous engine (Alembic), everything else with the async one.
Every command opens the database through `open_database`, which applies pending migrations
first, so a new user never runs `mailgate migrate` by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from mailgate.config import Settings
from mailgate.errors import BadInput, MailgateError, OperationFailed, Transient
from mailgate.store import files, sqlite

P = ParamSpec("P")
T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"


def _driver_url(url: str, *, asynchronous: bool) -> sa.URL:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        # Not echoed: it may hold a password.
        raise BadInput(
            "MAILGATE_DATABASE_URL is not a database URL: use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite" if asynchronous else "sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise BadInput(
        f"MAILGATE_DATABASE_URL uses {backend!r}: mailgate supports SQLite and PostgreSQL "
        "(postgresql+psycopg://…)."
    )


# libpq's own defaults wait 130 s for a connection and about two hours to notice a server
# that vanished without closing its sockets (a power cut, a network split): a transaction would
# hang that long. A URL's own values (?connect_timeout=…) win.
_POSTGRESQL_CONNECTION = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms: data unacknowledged this long closes the connection
}


def _pool_options(url: sa.URL) -> dict[str, object]:
    """An SQLite file's connections are waited for as long as its write lock: a pool of
    writers waiting their turn would otherwise fail the next caller after the pool's 30 s.

    A PostgreSQL connection is tested as it leaves the pool (a `SELECT 1`'s round trip): after
    a restart or a failover every pooled connection is dead, and without the test each would
    fail the work given to it once before the pool noticed."""
    if url.get_backend_name() == "sqlite":
        if sqlite.database_path(url) is None:
            return {}
        return {"pool_timeout": sqlite.LOCK_PATIENCE + sqlite.ATTEMPT_SECONDS}
    defaults = {k: v for k, v in _POSTGRESQL_CONNECTION.items() if k not in url.query}
    return {"pool_pre_ping": True, "connect_args": defaults}


def _engine(url: str, role: sqlite.Role) -> sa.Engine:
    """A synchronous engine; SQLite's tuned for `role` (see `store.sqlite`)."""
    driver_url = _driver_url(url, asynchronous=False)
    engine = sa.create_engine(driver_url, **_pool_options(driver_url))
    if engine.dialect.name == "sqlite":
        sqlite.tune(engine, sqlite.database_path(driver_url), role)
    elif role != "migrations":  # `migrate` says it its own way
        sa.event.listen(engine, "handle_error", _server_failed)
    return engine


# PostgreSQL's refusals that end when the server's state changes, by SQLSTATE
# (https://www.postgresql.org/docs/current/errcodes-appendix.html), each in its sentence.
_SERVER_SAYS = {
    "25006": (  # read_only_sql_transaction
        "The database refused to write: it is read-only (a standby after a failover, or "
        "default_transaction_read_only on); nothing of this work was stored: make it "
        "writable, then run this again."
    ),
    "53100": (  # disk_full
        "The database server's disk is full; nothing of this work was stored: free some "
        "space there, then run this again."
    ),
}


def _server_failed(context: sa.engine.ExceptionContext) -> None:
    """PostgreSQL: a server that stops answering mid-command (a restart, the network, a
    deadlock it broke), or refuses to write (read-only, a full disk), in one sentence; its
    text is not echoed, it may name the server.

    Transient: the work's transaction was rolled back whole (a mailbox's message is taken again
    — receipt and issue are one transaction), and whoever retries with backoff (the mailbox
    loops, the supervisor's loops) goes on once the server is back; the pool, testing each
    connection it gives out, reconnects by itself."""
    if context.is_pre_ping:  # the pool's test of a pooled connection: it reconnects
        return
    original = context.original_exception
    code = getattr(original, "sqlstate", None) or ""
    if code == "25006":
        # Connected to a standby (the old primary after a failover) or to a database made
        # read-only: every pooled connection is dropped, the next ones connect anew and see the
        # server as it is by then, so writes go on once it is writable — without a restart.
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = True
    said = _SERVER_SAYS.get(code)
    if said is not None:
        raise Transient(said) from None
    if not isinstance(context.sqlalchemy_exception, sa.exc.OperationalError):
        return
    raise Transient(
        f"The database server failed this work ({type(original).__name__}): check that it is "
        "running and reachable at MAILGATE_DATABASE_URL, then run this again."
    ) from None


def _prepare_sqlite_file(url: str) -> Path | None:
    """Check an SQLite database's file before the first connection, and create it private."""
    driver_url = _driver_url(url, asynchronous=False)
    if driver_url.get_backend_name() != "sqlite":
        return None
    path = sqlite.database_path(driver_url)
    if path is not None:
        sqlite.check_file(path)
        files.refuse_others_files(files.database_files(path))
        files.create_private_file(path)
    return path


def serialize(session: Session, keys: Iterable[str]) -> None:
    """Make the transactions that name a same key wait for one another, from here to their
    end: on PostgreSQL a transaction-level advisory lock per key, all taken in one statement in
    one order (two transactions never wait for each other in a circle); on SQLite nothing, its
    write lock lets one writer at a time already. For checks that a row does not exist yet which
    no unique index guards (one Message-ID taken by two workers, one file ingested by two
    processes)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(
        {
            int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            for key in keys
        }
    )
    if ids:
        session.execute(_ADVISORY_LOCKS, {"ids": ids})


_READ_ONLY = sa.text("SELECT current_setting('transaction_read_only')")
_ADVISORY_LOCKS = sa.text(
    "SELECT count(pg_advisory_xact_lock(id)) FROM unnest(CAST(:ids AS bigint[])) AS id"
)


# The newest migration (a unit test checks it against the migrations folder): a database at
# HEAD is ready without loading the migration machinery at every command's start.
HEAD = "0013"


def current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def migrate(url: str) -> bool:
    """Apply pending migrations; True when something was applied.

    An SQLite file is checked first and created 0600; once it opened as a database, files
    others may read are made private."""
    path = _prepare_sqlite_file(url)
    engine = _engine(url, "migrations")
    try:
        applied = _migrate(engine)
    except sa.exc.OperationalError as exc:
        if path is not None:  # an SQLite error none of `store.sqlite`'s sentences covers
            raise OperationFailed(
                f"The SQLite database {path} cannot be used ({exc.orig}): check "
                "MAILGATE_DATABASE_URL and the file."
            ) from None
        raise Transient(
            f"The database cannot be reached ({type(exc.orig).__name__}): check "
            "MAILGATE_DATABASE_URL and that the database server is running."
        ) from None
    finally:
        engine.dispose()
    if path is not None:
        files.tighten_files(files.database_files(path))
    return applied


def _refuse_newer(current: str | None) -> None:
    """A database migrated by a newer mailgate is left alone: this version would not know its
    tables (migrations are numbered, so a higher number is newer)."""
    if current is not None and current.isdigit() and int(current) > int(HEAD):
        raise OperationFailed(
            f"The database was migrated by a newer mailgate (revision {current}; this one knows "
            f"up to {HEAD}): run the newer version here too, or restore a backup made for this one."
        )


def _migrate(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        current = current_revision(connection)
        if current == HEAD:
            return False
        _refuse_newer(current)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            # Processes starting together on an empty database migrate one at a time.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7431202611)"))
            if current_revision(connection) == HEAD:  # another process was first
                return False
            _upgrade(connection)
            return True
    with engine.connect() as connection:
        # Off while tables are rebuilt (SQLite migrations copy a table and drop the old one,
        # which would fire ON DELETE actions on the rows pointing at it); checked after.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        # BEGIN IMMEDIATE takes SQLite's write lock before reading the revision; another
        # process migrating meanwhile is waited for.
        sqlite.begin_immediate(connection)
        try:
            if current_revision(connection) == HEAD:  # another process was first
                connection.exec_driver_sql("ROLLBACK")
                return False
            _upgrade(connection)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise OperationFailed(
                    f"The migration left {len(broken)} row(s) pointing at rows that do not "
                    "exist; nothing was changed: restore the database from a backup and "
                    "report this."
                )
            connection.exec_driver_sql("COMMIT")
            return True
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise


def _async_engine(url: str, **pool: int) -> AsyncEngine:
    """An async engine; SQLite's tuned for the event loop's reads and short writes."""
    async_url = _driver_url(url, asynchronous=True)
    engine = create_async_engine(async_url, **_pool_options(async_url), **pool)
    if engine.dialect.name == "sqlite":
        sqlite.tune(engine.sync_engine, sqlite.database_path(async_url), "async")
    else:
        sa.event.listen(engine.sync_engine, "handle_error", _server_failed)
    return engine


class Database:
    """The engines and session factories of one process.

    The async engine serves the event loop's short reads and writes. Work of many statements
    (the inbound pipeline, tracker writes) runs as one transaction on the synchronous engine in a
    worker thread (`run`): one thread hop per transaction instead of one per statement.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _async_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._control_engine: AsyncEngine | None = None
        self._control_sessions: async_sessionmaker[AsyncSession] | None = None
        self._sync_engine: sa.Engine | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        self._sync_lock = threading.Lock()

    def sync_session(self) -> Session:
        with self._sync_lock:  # worker threads may ask for the first one at once
            if self._sync_sessions is None:
                engine = _engine(self.url, "write path")
                self._sync_engine = engine
                self._sync_sessions = sessionmaker(engine, expire_on_commit=False)
            return self._sync_sessions()

    async def run(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(session, *args)` in one transaction, in a worker thread; committed when it
        returns, rolled back when it raises. On SQLite it waits its turn for the write lock
        (`store.sqlite`); a caller cancelled meanwhile stops the wait."""
        given_up = threading.Event()

        def transaction() -> T:
            sqlite.abandoned.set(given_up)  # this thread's copy of the caller's context
            with self.sync_session() as session, session.begin():
                return work(session, *args, **kwargs)

        try:
            return await asyncio.to_thread(transaction)
        except asyncio.CancelledError:
            given_up.set()
            raise

    async def read(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(session, *args)` that only reads (the desk's lists and pages): on the async
        engine, where SQLite reads outside any transaction, so it takes no lock and waits for no
        writer."""
        async with self.sessions() as session:
            return await session.run_sync(work, *args, **kwargs)

    def write_once(self) -> None:
        """Let the current task's writes (and those of the tasks it starts) make one attempt at
        SQLite's write lock instead of waiting their turn: for a task that must give up in
        time, such as a lease's heartbeat (`store.sqlite`)."""
        if self.dialect == "sqlite":
            sqlite.write_once()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        return self.sessions()

    def control_session(self) -> AsyncSession:
        """A session on a pool of its own, for a worker's heartbeat: the renewal of its leases
        never waits for a connection behind its mailboxes' work. A thousand mailboxes opening at
        once queue for the main pool long enough for the leases to run out unrenewed, and every
        mailbox of the worker to be stopped and opened again. (An SQLite database in memory has
        no second connection to it: the main pool then.)"""
        if self._control_sessions is None:
            if self.dialect == "sqlite" and sqlite.database_path(make_url(self.url)) is None:
                return self.sessions()
            self._control_engine = _async_engine(self.url, pool_size=1, max_overflow=1)
            self._control_sessions = async_sessionmaker(
                self._control_engine, expire_on_commit=False
            )
        return self._control_sessions()

    async def is_ready(self) -> bool:
        """Database reachable, migrations applied, and (PostgreSQL) writable: not a standby nor
        a database made read-only.

        A pooled connection opened while the database was read-only stays read-only (a session
        keeps the default it began with): one that says so is dropped, and a new one asked."""
        try:
            for _attempt in range(2):
                async with self.engine.connect() as connection:
                    current = await connection.run_sync(current_revision)
                    if self.dialect != "postgresql":
                        break
                    if await connection.scalar(_READ_ONLY) == "off":
                        break
                    await connection.invalidate()
            else:
                return False
        except (sa.exc.SQLAlchemyError, MailgateError):  # the latter: SQLite's, in a sentence
            return False
        return current == HEAD

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._control_engine is not None:
            await self._control_engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def ensure_home(settings: Settings) -> None:
    """Create MAILGATE_HOME (0700), or say why it cannot be used."""
    try:
        files.create_folder(settings.home)
        # A probe file of this process's own: processes starting together must not race.
        with tempfile.NamedTemporaryFile(dir=settings.home, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BadInput(
            f"MAILGATE_HOME {settings.home} cannot be used as the data folder ({exc.strerror}): "
            "point it at a folder mailgate may write to."
        ) from None


def open_database(settings: Settings) -> Database:
    """Create MAILGATE_HOME, apply pending migrations, and return the process's Database.

    Once the database opened, a data folder and private files that others may read are made
    private (after, not before: a database that cannot be used is left as it was found)."""
    ensure_home(settings)
    files.refuse_others_files([settings.key_file])
    migrate(settings.database_url)
    files.tighten_folder(settings.home)
    files.tighten_files([settings.key_file])
    return Database(settings.database_url)
