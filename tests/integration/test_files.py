"""The data folder and the files holding mail and secrets are private to mailgate's user: made
so, and made so again on start when something left them open to others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.cli import Cli

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store import files
from mailgate.store.models import Project
from mailgate.tracker.service import add_project
from mailgate.web.tls import ensure_dev_certificate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "private" in line]


async def test_a_new_home_is_private_from_the_start(ctx: Context, home: Path) -> None:
    await add_project(ctx, "HELP", "Help")
    async with ctx.db.session() as session:  # a connection open: the -wal and -shm exist
        assert await session.scalar(select(Project.key)) == "HELP"
        database = home / "mailgate.db"
        side_files = [home / "mailgate.db-wal", home / "mailgate.db-shm"]
        assert all(path.exists() for path in side_files)
        assert [mode(path) for path in [database, *side_files]] == [0o600] * 3
    assert mode(home) == 0o700
    assert mode(ctx.settings.key_file) == 0o600


def test_the_development_certificate_key_is_private(home: Path) -> None:
    home.mkdir()
    _cert, key = ensure_dev_certificate(home)
    assert mode(key) == 0o600 and mode(key.parent) == 0o700
    key.chmod(0o644)
    ensure_dev_certificate(home)
    assert mode(key) == 0o600


def test_files_an_older_version_left_open_are_made_private_once(cli: Cli, home: Path) -> None:
    assert cli("project", "add", "HELP", "--name", "Help").code == 0
    home.chmod(0o755)
    opened = [home / "mailgate.db", home / "secret.key"]
    for path in opened:
        path.chmod(0o644)
    first = cli("project", "list")
    assert first.code == 0 and "HELP" in first.stdout
    assert mode(home) == 0o700 and [mode(p) for p in opened] == [0o600, 0o600]
    assert len(warnings(first.stderr)) == 3, first.stderr  # the folder and each file, once
    again = cli("project", "list")
    assert again.code == 0 and warnings(again.stderr) == []


def test_a_shared_folder_keeps_its_mode_but_mailgates_files_are_private(
    cli: Cli, home: Path
) -> None:
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # whatever the umask
    (home / "notes.txt").write_text("the admin's own file")
    assert cli("project", "add", "HELP", "--name", "Help").code == 0
    assert mode(home) == 0o755
    assert mode(home / "mailgate.db") == 0o600 and mode(home / "secret.key") == 0o600


def test_a_sticky_folder_like_tmp_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = Cli(shared)("project", "add", "HELP", "--name", "Help")
    assert result.code == 0, result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert mode(shared / "mailgate.db") == 0o600


def test_a_database_outside_the_home_is_created_private(tmp_path: Path, home: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    database = elsewhere / "desk.db"
    cli = Cli(home, MAILGATE_DATABASE_URL=f"sqlite:///{database}")
    assert cli("project", "add", "HELP", "--name", "Help").code == 0
    assert mode(database) == 0o600
    assert mode(elsewhere) == 0o755  # not mailgate's folder: left alone


def test_migrate_makes_a_private_home_too(cli: Cli, home: Path) -> None:
    result = cli("migrate")
    assert result.code == 0, result.stderr
    assert warnings(result.stderr) == []  # nothing to fix: private from the start
    assert mode(home) == 0o700 and mode(home / "mailgate.db") == 0o600


def test_a_file_of_another_user_open_to_others_is_refused_and_left_as_it_was(home: Path) -> None:
    # In a shared folder anyone may put a mailgate.db (to collect every message) or a
    # secret.key (whose key they know) before mailgate starts; nor could mailgate chmod it.
    home.mkdir(mode=0o700)
    planted = [home / "mailgate.db", home / "secret.key"]
    for path in planted:
        path.write_bytes(b"")
        path.chmod(0o666)
    someone_else = os.geteuid() + 1
    for path in planted:
        with pytest.raises(BadInput, match="belongs to another user") as refused:
            files.refuse_others_files([path], user=someone_else)
        assert str(path) in str(refused.value) and str(refused.value).endswith(".")
        assert mode(path) == 0o666 and path.read_bytes() == b""
    files.refuse_others_files(planted)  # this user's own: made private at start instead
    for path in planted:
        path.chmod(0o600)  # private to its owner: nobody else can read it
    files.refuse_others_files(planted, user=someone_else)


def test_a_database_made_through_a_link_is_created_private(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    # The admin links mailgate.db to a disk of its own before the first start.
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o755)
    home.mkdir(mode=0o700)
    (home / "mailgate.db").symlink_to(disk / "desk.db")
    assert cli("project", "add", "HELP", "--name", "Help").code == 0
    assert mode(disk / "desk.db") == 0o600 and (home / "mailgate.db").is_symlink()
    assert mode(disk) == 0o755  # not mailgate's folder: left alone
