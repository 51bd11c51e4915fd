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


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'mailgate.db'}",
        base_url="https://mailgate.test",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ctx(settings: Settings, clock: FakeClock) -> AsyncIterator[Context]:
    context = Context.open(settings, clock=clock, sleep=clock.sleep)
    yield context
    await context.close()


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli(home)


@pytest.fixture
def parse_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file where the parse functions of `tests.support.parsing` record their calls."""
    log = tmp_path / "parse.log"
    log.touch()
    monkeypatch.setenv("MAILGATE_TEST_PARSE_LOG", str(log))
    return log
