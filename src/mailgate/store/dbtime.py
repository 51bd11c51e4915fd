"""The database server's clock, as an SQL expression: what leases and worker heartbeats are
measured on, so that hosts whose own clocks differ still agree on when a lease runs out.

`database_now(seconds)` is the server's time plus `seconds`, computed in SQL where the statement
runs: `now()` on PostgreSQL (the start of the transaction: a lease's statements are short),
`strftime('%Y-%m-%d %H:%M:%f', 'now')` on SQLite, which runs on the one host that opens its
file. SQLite gets the text SQLAlchemy stores in a UTC column (microseconds, no zone), so values
compare as written ones do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from mailgate.store.base import UTCDateTime


class database_now(FunctionElement[datetime]):
    """The database server's time, `seconds` later (earlier when negative)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "database_now"

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__(sa.literal(float(seconds), sa.Float()))


def _seconds(element: database_now, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(database_now, "postgresql")
def _postgresql(element: database_now, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(now() + make_interval(secs => {_seconds(element, compiler, **kw)}))"


@compiles(database_now, "sqlite")
def _sqlite(element: database_now, compiler: SQLCompiler, **kw: Any) -> str:
    modifier = f"printf('%+.6f seconds', {_seconds(element, compiler, **kw)})"
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', {modifier}) || '000')"


@compiles(database_now)
def _other(element: database_now, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa.exc.CompileError(f"no database clock for {compiler.dialect.name}")
