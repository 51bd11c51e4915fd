"""0010: a mailbox's old participants-only flag becomes `non_participants`, and back."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mailgate.store.db import MIGRATIONS

OLD = [
    {"comments_from_participants_only": True, "bulk": "delete"},
    {"comments_from_participants_only": False},
    {},
]


def _options(connection: sa.Connection) -> list[dict[str, object]]:
    rows = connection.exec_driver_sql("SELECT route_options FROM mailboxes ORDER BY id")
    return [json.loads(value) for value in rows.scalars()]


def test_the_participants_flag_becomes_who_may_comment_and_back(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0009")
        for number, options in enumerate(OLD):
            connection.execute(
                sa.text(
                    "INSERT INTO mailboxes (name, protocol, host, port, security, username, "
                    "folder, project, handler, after, poll_seconds, idle, backlog, "
                    "max_message_bytes, route_options, status, processed, quarantined, "
                    "created_at, updated_at) VALUES (:name, 'imap', 'h', 993, 'ssl', 'u', "
                    "'INBOX', 'HELP', 'create-or-comment', 'seen', 60, 1, 'unseen', 1024, "
                    ":options, 'new', 0, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {"name": f"box{number}", "options": json.dumps(options)},
            )
        command.upgrade(config, "0010")
        assert _options(connection) == [
            {"non_participants": "new-issue", "bulk": "delete"},
            {"non_participants": "comment"},
            {},  # never chose: the new default (new-issue)
        ]
        connection.exec_driver_sql(
            "UPDATE mailboxes SET route_options = "
            '\'{"non_participants": "hold", "max_cc_watchers": 3}\' WHERE name = \'box2\''
        )
        command.downgrade(config, "0009")
        assert _options(connection) == [
            {"bulk": "delete", "comments_from_participants_only": True},
            {"comments_from_participants_only": False},
            {"comments_from_participants_only": True},  # held: the closest older rule
        ]
    engine.dispose()
