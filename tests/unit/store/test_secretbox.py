import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet

from mailgate.config import Settings
from mailgate.errors import BadInput, MailgateError
from mailgate.store.db import migrate
from mailgate.store.models import Base
from mailgate.store.secretbox import SecretBox, load_secretbox


def make_settings(home: Path, keys: tuple[str, ...] = ()) -> Settings:
    return Settings(home=home, database_url="sqlite://", base_url="https://x", secret_keys=keys)


def test_key_file_is_created_private(tmp_path: Path) -> None:
    box = load_secretbox(make_settings(tmp_path))
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert box.decrypt(box.encrypt("s3cret")) == "s3cret"
    assert load_secretbox(make_settings(tmp_path)).decrypt(box.encrypt("again")) == "again"


def test_ciphertext_does_not_contain_the_secret(tmp_path: Path) -> None:
    box = load_secretbox(make_settings(tmp_path))
    assert "s3cret" not in box.encrypt("s3cret")


def test_environment_keys_win_and_old_keys_still_decrypt(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = load_secretbox(make_settings(tmp_path, (old,))).encrypt("value")
    box = load_secretbox(make_settings(tmp_path, (new, old)))
    assert box.decrypt(before) == "value"
    rotated = box.rotate(before)
    assert SecretBox([new.encode()]).decrypt(rotated) == "value"
    assert not (tmp_path / "secret.key").exists()


def test_a_bad_key_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="MAILGATE_SECRET_KEYS"):
        load_secretbox(make_settings(tmp_path, ("not-a-key",)))


def test_wrong_key_says_which_key_to_give(tmp_path: Path) -> None:
    ciphertext = SecretBox([Fernet.generate_key()]).encrypt("value")
    with pytest.raises(MailgateError, match="key it was encrypted with"):
        SecretBox([Fernet.generate_key()]).decrypt(ciphertext)


def test_migrations_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert migrate(url) is True
    assert migrate(url) is False
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": _not_search_index}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def _not_search_index(name: str | None, kind: str, _parents: object) -> bool:
    """SQLite's full-text tables (and their shadow tables) are the search's, kept by triggers,
    not tables of the models."""
    return not (kind == "table" and name is not None and "_fts" in name)


def test_head_names_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from mailgate.store.db import HEAD, MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_raw_messages_move_to_blobs_and_back(tmp_path: Path) -> None:
    """0008 keeps each stored message once, by SHA-256, in blobs; downgrading puts it back."""
    from alembic import command
    from alembic.config import Config

    from mailgate.store.db import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        for sha, raw in (("a" * 64, b"message one"), ("a" * 64, b"message one"), ("", None)):
            connection.execute(
                sa.text(
                    "INSERT INTO receipts (sha256, size, status, raw, received_at) "
                    "VALUES (:sha, 1, 'created', :raw, '2026-01-01 00:00:00')"
                ),
                {"sha": sha, "raw": raw},
            )
        command.upgrade(config, "head")
        assert connection.execute(sa.text("SELECT sha256, data FROM blobs")).all() == [
            ("a" * 64, b"message one")
        ]
        columns = {c["name"] for c in sa.inspect(connection).get_columns("receipts")}
        assert "raw" not in columns and "post_action" in columns
        command.downgrade(config, "0007")
        raws = connection.execute(sa.text("SELECT raw FROM receipts ORDER BY id")).scalars()
        assert list(raws) == [b"message one", b"message one", None]
    engine.dispose()


def test_migrating_keeps_what_points_at_rebuilt_tables(tmp_path: Path) -> None:
    """SQLite migrations rebuild tables; the rows pointing at them keep their links."""
    from alembic import command
    from alembic.config import Config

    from mailgate.store.db import MIGRATIONS
    from mailgate.store.sqlite import on_connect

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", on_connect)  # foreign keys on, as mailgate runs
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        statements = [
            "INSERT INTO projects (id, key, name, notify, next_number, created_at) "
            "VALUES (1, 'HELP', 'Help', 1, 2, '2026-01-01 00:00:00')",
            "INSERT INTO people (id, email, kind, created_at) "
            "VALUES (1, 'carol@example.net', 'customer', '2026-01-01 00:00:00')",
            "INSERT INTO receipts (id, sha256, size, status, raw, received_at) "
            "VALUES (7, 'ab', 1, 'created', x'41', '2026-01-01 00:00:00')",
            "INSERT INTO issues (id, project_id, number, summary, description, reporter_id, "
            "status, receipt_id, created_at, updated_at) VALUES (1, 1, 1, 's', 'd', 1, 'open', 7, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        ]
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()
    assert migrate(url) is True
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT receipt_id FROM issues").scalar() == 7
    engine.dispose()
