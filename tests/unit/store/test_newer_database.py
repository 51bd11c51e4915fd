"""A database migrated by a newer mailgate is refused in a sentence, and left as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailgate.errors import OperationFailed
from mailgate.store.db import HEAD, migrate


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "mailgate.db"
    migrate(f"sqlite:///{path}")
    newer = f"{int(HEAD) + 1:04d}"
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (newer,))
    with pytest.raises(OperationFailed) as refused:
        migrate(f"sqlite:///{path}")
    assert str(refused.value) == (
        f"The database was migrated by a newer mailgate (revision {newer}; this one knows up "
        f"to {HEAD}): run the newer version here too, or restore a backup made for this one."
    )
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (newer,)
        ]
