"""0011: the users, sessions, sign-in failures, links and audit tables, and who started each
sign-in; down and up again."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mailgate.store.db import MIGRATIONS

TABLES = {"users", "web_sessions", "sign_in_failures", "user_links", "audit_events"}


def test_0011_goes_down_and_up(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0011")
        inspector = sa.inspect(connection)
        assert set(inspector.get_table_names()) >= TABLES
        columns = {c["name"] for c in inspector.get_columns("authorization_requests")}
        assert "started_by" in columns
        command.downgrade(config, "0010")
        inspector = sa.inspect(connection)
        assert not TABLES & set(inspector.get_table_names())
        columns = {c["name"] for c in inspector.get_columns("authorization_requests")}
        assert "started_by" not in columns
        command.upgrade(config, "0011")
        assert set(sa.inspect(connection).get_table_names()) >= TABLES
