"""Engines, sessions and migrations.

Migrations run with a synchronous engine (Alembic), everything else with the async one.
Every command opens the database through `open_database`, which applies pending migrations
first, so a new user never runs `mailgate migrate` by hand.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

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
from mailgate.errors import BadInput, OperationFailed, Transient

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


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one writer commits; busy_timeout makes a second writer wait
    # instead of failing at once with "database is locked" — and stays well below the mailbox
    # lease (10 s), so a heartbeat waiting for the lock renews in time.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_transactions_by_us(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module would begin a transaction only at the first write: reads before it,
    # and savepoints, would run outside any transaction. SQLAlchemy begins it instead.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: sa.Connection) -> None:
    # Take the write lock at the start: the read-then-write of a transaction (is this message
    # known? then record it) cannot interleave with another process's.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# The newest migration (a unit test checks it against the migrations folder): a database at
# HEAD is ready without loading the migration machinery at every command's start.
HEAD = "0010"


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
    """Apply pending migrations; True when something was applied."""
    engine = sa.create_engine(_driver_url(url, asynchronous=False))
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _on_sqlite_connect)
    try:
        with engine.connect() as connection:
            if current_revision(connection) == HEAD:
                return False
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
            # BEGIN IMMEDIATE takes SQLite's write lock before reading the revision.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
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
    except sa.exc.OperationalError as exc:
        raise Transient(
            f"The database cannot be reached ({type(exc.orig).__name__}): check "
            "MAILGATE_DATABASE_URL and that the database server is running."
        ) from None
    finally:
        engine.dispose()


class Database:
    """The engines and session factories of one process.

    The async engine serves the event loop's short reads and writes. Work of many statements
    (the inbound pipeline, tracker writes) runs as one transaction on the synchronous engine in a
    worker thread (`run`): one thread hop per transaction instead of one per statement.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(_driver_url(url, asynchronous=True))
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine.sync_engine, "connect", _on_sqlite_connect)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._sync_engine: sa.Engine | None = None
        self._sync_sessions: sessionmaker[Session] | None = None
        self._sync_lock = threading.Lock()

    def sync_session(self) -> Session:
        with self._sync_lock:  # worker threads may ask for the first one at once
            if self._sync_sessions is None:
                engine = sa.create_engine(_driver_url(self.url, asynchronous=False))
                if engine.dialect.name == "sqlite":
                    sa.event.listen(engine, "connect", _on_sqlite_connect)
                    sa.event.listen(engine, "connect", _sqlite_transactions_by_us)
                    sa.event.listen(engine, "begin", _begin_immediate)
                self._sync_engine = engine
                self._sync_sessions = sessionmaker(engine, expire_on_commit=False)
            return self._sync_sessions()

    async def run(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(session, *args)` in one transaction, in a worker thread; committed when it
        returns, rolled back when it raises."""

        def transaction() -> T:
            with self.sync_session() as session, session.begin():
                return work(session, *args, **kwargs)

        return await asyncio.to_thread(transaction)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        return self.sessions()

    async def is_ready(self) -> bool:
        """Database reachable and migrations applied."""
        try:
            async with self.engine.connect() as connection:
                current = await connection.run_sync(current_revision)
        except sa.exc.SQLAlchemyError:
            return False
        return current == HEAD

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def ensure_home(settings: Settings) -> None:
    """Create MAILGATE_HOME, or say why it cannot be used."""
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        # A probe file of this process's own: processes starting together must not race.
        with tempfile.NamedTemporaryFile(dir=settings.home, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BadInput(
            f"MAILGATE_HOME {settings.home} cannot be used as the data folder ({exc.strerror}): "
            "point it at a folder mailgate may write to."
        ) from None


def open_database(settings: Settings) -> Database:
    """Create MAILGATE_HOME, apply pending migrations, and return the process's Database."""
    ensure_home(settings)
    migrate(settings.database_url)
    return Database(settings.database_url)
