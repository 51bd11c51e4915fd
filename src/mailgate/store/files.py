"""The data folder and the files in it are private to the user mailgate runs as.

The database holds every raw message and attachment, the key file decrypts every stored secret:
the folder is made 0700 and those files 0600 when mailgate creates them, and tightened on start
when an earlier version (or a copy, or a restore) left them readable by others.

A folder is tightened only when it is mailgate's own: a folder shared with other things (a sticky
folder like /tmp, one owned by another user, or one holding files that are not mailgate's) keeps
its mode — mailgate's files in it are private anyway.

A file of mail or secrets that belongs to another user and is open to others is refused before
it is used: mailgate could not make it private, and in a shared folder anyone may have put it
there (a database that then collects every message, a key file whose key its author knows).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import structlog

from mailgate.errors import BadInput

log = structlog.get_logger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600
# What mailgate itself keeps in its data folder; anything else means the folder is shared.
OWN_ENTRIES = frozenset(
    {"mailgate.db", "mailgate.db-wal", "mailgate.db-shm", "mailgate.db-journal"}
    | {"secret.key", "mailgate.toml", "tls"}
)
OWN_PREFIXES = (".write-test-", "secret.key.")  # a probe or a key being replaced right now
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def create_folder(folder: Path) -> bool:
    """Create `folder` (and its parents) with the folder private; True if it was created."""
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True)
    except FileExistsError:
        return False
    return True


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists.

    SQLite creates a database 0644 and gives its -wal and -shm files the database's mode: an
    empty file made first (an empty file is a valid empty database) sets the mode for all three.
    A link to a file not made yet is followed (O_EXCL would not), so the file SQLite then opens
    through it is this one; a missing folder is left for SQLite to report.
    """
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(os.path.realpath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def is_own_folder(folder: Path, entries: Iterable[str]) -> bool:
    """True when `folder`'s mode is mailgate's to set: owned by this user, not a shared sticky
    folder, and holding nothing but mailgate's files."""
    info = folder.stat()
    if info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX:
        return False
    return all(name in OWN_ENTRIES or name.startswith(OWN_PREFIXES) for name in entries)


def tighten_folder(folder: Path) -> None:
    """Make mailgate's own data folder 0700 if others may read it (a warning says so)."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    if not mode & 0o077 or not is_own_folder(folder, os.listdir(folder)):
        return
    _restrict(folder, mode, FOLDER_MODE, "the data folder")


def refuse_others_files(paths: Iterable[Path], user: int | None = None) -> None:
    """Refuse, in one sentence, a file that belongs to another user than `user` (this
    process's) while others may read or write it. Changes nothing."""
    user = os.geteuid() if user is None else user
    for path in paths:
        try:
            info = path.stat()  # through a link: what matters is who can read the data
        except FileNotFoundError:
            continue
        if info.st_uid != user and stat.S_IMODE(info.st_mode) & 0o077:
            raise BadInput(_not_ours(path, info.st_uid))


def _not_ours(path: Path, owner: int) -> str:
    return (
        f"{path} belongs to another user (uid {owner}) and is open to others, so mailgate "
        "cannot keep the mail or secrets in it private: run mailgate as that user, or `chown` "
        "the file to the user mailgate runs as and `chmod 600` it."
    )


def tighten_files(paths: Iterable[Path]) -> None:
    """Make each existing file 0600 if others may read it (a warning names each)."""
    for path in paths:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue
        if path.is_symlink() or not mode & 0o077:
            continue  # a link points at a file mailgate did not make: not ours to change
        _restrict(path, mode, FILE_MODE, "a file of mail or secrets")


def _restrict(path: Path, mode: int, private_mode: int, what: str) -> None:
    try:
        path.chmod(private_mode)
    except PermissionError:  # not this user's, and no privilege to change it anyway
        raise BadInput(_not_ours(path, path.stat().st_uid)) from None
    log.warning(
        f"made {what} private: others could read it",
        path=str(path),
        mode_was=oct(mode),
        mode=oct(private_mode),
    )


def database_files(database: Path) -> list[Path]:
    """The SQLite database and the files SQLite keeps beside it."""
    return [database, *(database.with_name(database.name + s) for s in SQLITE_SIDE_FILES)]
