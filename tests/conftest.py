"""Fixtures of the whole suite.

Both stores. A test module (or class, or test) marked
``pytest.mark.stores("sqlite", "postgresql")`` runs each of its tests once per store named, with
the ids ``[sqlite]`` and ``[postgresql]``: the `database_url` fixture, and with it `settings`,
`ctx` and `cli`, point at an SQLite file in `home` or at a fresh database of the suite's
PostgreSQL (tests/support/postgres.py). Unmarked tests run on SQLite alone. A test that asks
which store it runs on reads `ctx.db.dialect` (or `store`, the fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailgate.config import Settings
from mailgate.context import Context
from tests.support.cli import Cli
from tests.support.clock import FakeClock

pytest_plugins = [
    "tests.support.emulator",
    "tests.support.oidc",
    "tests.support.server",
    "tests.support.dovecot",
    "tests.support.postfix",
    "tests.support.web",
    "tests.support.webhooks",
    "tests.support.postgres",
]


STORES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stores(*names): run the test once per store named (sqlite, postgresql), "
        "through the database_url fixture",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("stores")
    if marker is None or "store" not in metafunc.fixturenames:
        return
    names = marker.args or STORES
    unknown = set(names) - set(STORES)
    if unknown:
        raise pytest.UsageError(f"stores: unknown store(s) {sorted(unknown)}; use {STORES}")
    metafunc.parametrize("store", names, indirect=True, ids=list(names))


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The store this test runs on: "sqlite" unless the test is marked `stores`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def database_url(store: str, home: Path, request: pytest.FixtureRequest) -> str:
    """An SQLite file in `home`, or a fresh database of the suite's PostgreSQL."""
    if store == "postgresql":
        return str(request.getfixturevalue("migrated_postgres_url"))
    return f"sqlite:///{home / 'mailgate.db'}"


@pytest.fixture
def settings(home: Path, database_url: str) -> Settings:
    return Settings(home=home, database_url=database_url, base_url="https://mailgate.test")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ctx(settings: Settings, clock: FakeClock) -> AsyncIterator[Context]:
    context = Context.open(settings, clock=clock, sleep=clock.sleep)
    yield context
    await context.close()


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Context]:
    """A context on the real clock and sleep, as in a running process (for the tests that
    watch a loop live: reconnects, outages)."""
    context = Context.open(settings)
    yield context
    await context.close()


@pytest.fixture
def cli(home: Path, store: str, database_url: str) -> Cli:
    if store == "sqlite":  # the default database of MAILGATE_HOME, as a user has it
        return Cli(home)
    return Cli(home, MAILGATE_DATABASE_URL=database_url)


@pytest.fixture
def parse_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file where the parse functions of `tests.support.parsing` record their calls."""
    log = tmp_path / "parse.log"
    log.touch()
    monkeypatch.setenv("MAILGATE_TEST_PARSE_LOG", str(log))
    return log
