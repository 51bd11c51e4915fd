"""0012: assignees, search, API tokens, idempotency keys and webhooks — on a database with
issues already: nothing pointing at the rebuilt issues table is lost, what is there is indexed
for search, and it goes down and up again."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mailgate.store.db import MIGRATIONS, migrate
from mailgate.store.sqlite import on_connect

TABLES = {"api_tokens", "idempotency_keys", "webhooks", "webhook_deliveries", "issues_fts"}
ROWS = [
    "INSERT INTO projects (id, key, name, notify, next_number, created_at) "
    "VALUES (1, 'HELP', 'Help', 1, 2, '2026-01-01 00:00:00')",
    "INSERT INTO people (id, email, name, kind, created_at) "
    "VALUES (1, 'carol@example.net', 'Carol', 'customer', '2026-01-01 00:00:00')",
    "INSERT INTO issues (id, project_id, number, summary, description, reporter_id, status, "
    "created_at, updated_at) VALUES (1, 1, 1, 'Printer offline', 'Since nine', 1, 'open', "
    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    "INSERT INTO comments (id, issue_id, author_id, body, created_at) "
    "VALUES (1, 1, 1, 'The toner is empty', '2026-01-01 00:00:00')",
]


def _found(connection: sa.Connection, table: str, word: str) -> list[int]:
    query = f"SELECT rowid FROM {table} WHERE {table} MATCH :word"
    return list(connection.execute(sa.text(query), {"word": word}).scalars())


def _alembic(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def test_0012_indexes_what_is_there_and_goes_down_and_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    plain = sa.create_engine(url)  # foreign keys off, as `migrate` has them while it works
    with plain.begin() as connection:
        command.upgrade(_alembic(connection), "0011")
        for statement in ROWS:
            connection.exec_driver_sql(statement)
    plain.dispose()
    assert migrate(url) is True  # what `mailgate migrate` (and every start) does
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", on_connect)  # foreign keys on, as mailgate runs
    with engine.begin() as connection:
        assert set(sa.inspect(connection).get_table_names()) >= TABLES
        assert connection.exec_driver_sql("SELECT count(*) FROM comments").scalar() == 1
        assert _found(connection, "issues_fts", "printer") == [1]
        assert _found(connection, "issues_fts", "carol") == [1]  # the reporter
        assert _found(connection, "comments_fts", "toner") == [1]
        # The triggers keep the index: a new comment, an edited summary.
        connection.exec_driver_sql(
            "INSERT INTO comments (id, issue_id, author_id, body, created_at) "
            "VALUES (2, 1, 1, 'Zebra stripes', '2026-01-02 00:00:00')"
        )
        connection.exec_driver_sql("UPDATE issues SET summary = 'Scanner jammed' WHERE id = 1")
        assert _found(connection, "comments_fts", "zebra") == [2]
        assert _found(connection, "issues_fts", "scanner") == [1]
        assert _found(connection, "issues_fts", "printer") == []
    engine.dispose()
    plain = sa.create_engine(url)
    with plain.begin() as connection:
        command.downgrade(_alembic(connection), "0011")
        assert not TABLES & set(sa.inspect(connection).get_table_names())
        assert connection.exec_driver_sql("SELECT count(*) FROM comments").scalar() == 2
        command.upgrade(_alembic(connection), "0012")
        assert _found(connection, "comments_fts", "zebra") == [2]
    plain.dispose()
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", on_connect)
    with engine.begin() as connection:  # a deleted issue leaves nothing findable
        connection.exec_driver_sql("DELETE FROM issues WHERE id = 1")
        assert _found(connection, "issues_fts", "scanner") == []
        assert _found(connection, "comments_fts", "zebra") == []
    engine.dispose()
