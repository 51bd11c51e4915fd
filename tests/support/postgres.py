"""A real PostgreSQL on loopback for the test suite: Debian's binaries, its own cluster in a
temporary folder, on a free 127.0.0.1 port.

`initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user and its
commands run through `runuser -u postgres`; as anyone else they run as that user. Authentication
is `trust` on loopback only: the cluster lives as long as the test session and holds nothing but
test data.

Register the fixtures with ``pytest_plugins = ["tests.support.postgres"]`` in a conftest.py:

* ``postgres_server`` (session): the running cluster, stopped at the end of the session
  (starting one takes about a second, so it is shared);
* ``postgres_url`` (function): a fresh, empty database of that cluster for the test, as a
  SQLAlchemy URL (``postgresql+psycopg://…``), dropped afterwards;
* ``migrated_postgres_url`` (function): the same, with mailgate's migrations applied — a copy
  of a template database migrated once per session (a copy takes a tenth of the migrations'
  time), as the ``stores`` marker of tests/conftest.py uses it.

Skip rule (as for Dovecot): when PostgreSQL is not installed or does not start, the fixtures FAIL
if ``$CI`` is set or the process runs as root; only a developer machine without root skips.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mailgate.store import db
from tests.support.servers import unavailable

USER = "mailgate"
START_TIMEOUT = 30


def find_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/N/bin` holding initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Postgres:
    def __init__(self) -> None:
        bin_dir = find_bin()
        if bin_dir is None:
            raise RuntimeError("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)")
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="mailgate-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._names = itertools.count(1)
        self._template: str | None = None
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )

    def start(self) -> Postgres:
        made = self._run("initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8")
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stderr.strip()[-500:]}")
        for attempt in range(3):
            try:
                self.resume()
                break
            except RuntimeError as exc:
                # Another process (a second pytest -n worker's server, a client's ephemeral
                # port) took the port after _free_port chose it: choose again. Later starts
                # (`resume` after `pause`) keep the port, as a restarted server would.
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
                self.port = _free_port()
        atexit.register(self.stop)
        return self

    def resume(self) -> None:
        """Start the cluster (again, after `pause`)."""
        # fsync off: a test cluster need not survive the machine's crash, only its own. A
        # commit still writes its WAL before it returns (synchronous_commit stays on): the
        # crash tests (`restart("immediate")`) must not lose what was committed just before,
        # as a real server does not.
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        started = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        if started.returncode != 0:
            log = (self.folder / "log").read_text(errors="replace")[-1000:]
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log}")

    def pause(self, mode: str = "immediate") -> None:
        """Stop the cluster, keeping its data: "immediate" as in a crash (connections cut, no
        checkpoint), "fast" as an admin's restart (open transactions rolled back)."""
        stopped = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {stopped.stderr.strip()}")

    def restart(self, mode: str = "immediate") -> None:
        """Stop the cluster (see `pause` for `mode`) and start it again: every connection of
        every client is cut."""
        self.pause(mode)
        self.resume()

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def execute(self, sql: str, database: str = "postgres") -> None:
        """One statement as the cluster's superuser, outside any transaction."""
        with psycopg.connect(self.admin_dsn(database), autocommit=True) as connection:
            connection.execute(sql)

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database}"

    def new_database(self, *, migrated: bool = False) -> str:
        """A fresh database, empty or with mailgate's migrations applied; its SQLAlchemy URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        template = f' TEMPLATE "{self.migrated_template()}"' if migrated else ""
        with psycopg.connect(self.admin_dsn(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{template}')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{name}"

    def migrated_template(self) -> str:
        """A database at the newest migration that copies are made of (made once)."""
        if self._template is None:
            name = f"template_{os.getpid()}"
            with psycopg.connect(self.admin_dsn(), autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            db.migrate(self.url(name))  # its engine is disposed: nobody stays connected
            self._template = name
        return self._template

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1]
        with psycopg.connect(self.admin_dsn(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    try:
        server = Postgres().start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        unavailable("PostgreSQL", str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> Iterator[str]:
    url = postgres_server.new_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture
def migrated_postgres_url(postgres_server: Postgres) -> Iterator[str]:
    url = postgres_server.new_database(migrated=True)
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
