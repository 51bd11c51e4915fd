"""schemathesis over every operation of `/api/v1/openapi.json`, with an admin's token: no
answer is a server error, and every answer — its status, content type and body — is one the
description promises.

The app runs in-process on an event loop of its own (schemathesis drives its cases one after
another, synchronously), on a database holding one object of each kind, which the
description's examples name. The operations that reach out to a provider or a mail server are
tested apart, with fewer cases: the context's HTTP client refuses every request at once and
the mail servers are on a closed loopback port, so they fail fast, as a 2xx report or a 4xx.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import insert
from sqlalchemy.orm import Session

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.mailboxes import MailboxOptions, set_mailbox
from mailgate.mail.smtp_servers import SmtpOptions, set_smtp
from mailgate.store.db import Database
from mailgate.store.models import OutboxMessage
from mailgate.store.secretbox import SecretBox
from mailgate.tracker.tokens import create_token
from mailgate.tracker.users import add_user
from mailgate.web.api import create_api
from mailgate.web.app import create_app
from tests.support.web import PASSWORD
from tests.web.test_no_secret_in_pages import _configure

T = TypeVar("T")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The operations that talk to a provider or a mail server.
REACHING_OUT = r"/(test|refresh|revoke)$"
BOUNDED = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def refused(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("refused in the tests", request=request)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """The app on a database of its own, on an event loop running in a thread of its own."""

    def __init__(self, home: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = Settings(
            home=home,
            database_url=f"sqlite:///{home / 'mailgate.db'}",
            base_url="https://mailgate.test",
        )
        self.ctx: Context = self.run(self._open())
        self.client = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=create_app(self.ctx, run_workers=False)),
            base_url=self.settings.base_url,
        )
        self.token = ""

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=120)

    async def _open(self) -> Context:
        return Context.open(
            self.settings,
            http=lambda: httpx2.AsyncClient(transport=httpx2.MockTransport(refused)),
        )

    async def new_token(self) -> None:
        _, self.token = await create_token(self.ctx, "api-admin@example.com", "schemathesis")

    def call(self, case: schemathesis.Case[Any]) -> httpx2.Response:
        sent = case.as_transport_kwargs(base_url=self.settings.base_url + "/api/v1")
        headers = {**sent.get("headers", {}), "authorization": f"Bearer {self.token}"}
        body: dict[str, Any] = {}
        if "json" in sent:
            body["json"] = sent["json"]
        elif sent.get("data") is not None:
            body["content"] = sent["data"]
        request = self.client.request(
            sent["method"], sent["url"], params=sent.get("params") or None, headers=headers, **body
        )
        answer = self.run(request)
        if case.path == "/tokens/{token_id}/revoke":
            self.run(self.new_token())  # it may have been this one
        return answer

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.ctx.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def seed(ctx: Context) -> None:
    """One object of each kind, named as the description's examples name them."""
    await add_user(ctx, "api-admin@example.com", "admin", PASSWORD)
    await add_user(ctx, "agent@example.com", "agent", PASSWORD)
    await _configure(ctx)  # integration m365, credential 1, project HELP, support, outgoing
    port = closed_port()
    await set_mailbox(ctx, "support", MailboxOptions(port=port))
    await set_smtp(ctx, "outgoing", SmtpOptions(port=port))
    raw = b"From: carol@example.net\r\nSubject: lost\r\n\r\nhello\r\n"
    lost = Destination(project="NOPE")
    held = await pipeline.take(ctx, None, pipeline.MessageRef(), raw, destination=lost)
    assert held.status == "quarantined"

    def dead_letter(session: Session) -> None:
        session.execute(
            insert(OutboxMessage).values(
                kind="comment",
                recipients=["carol@example.net"],
                message_id="<dead@mailgate.test>",
                raw=b"Subject: Re: printer\r\n\r\nfixed\r\n",
                status="dead",
                attempts=3,
                next_attempt_at=ctx.clock(),
                last_error="550 no such user",
                created_at=ctx.clock(),
            )
        )

    await ctx.db.run(dead_letter)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose database is seeded, copied for each operation (what one operation deletes
    or changes, the next finds again)."""
    home = tmp_path_factory.mktemp("api-schema") / "home"
    world = Served(home)
    try:
        world.run(seed(world.ctx))
    finally:
        world.close()
    return home


@pytest.fixture
def served(seeded: Path, tmp_path: Path) -> Iterator[Served]:
    home = tmp_path / "home"
    shutil.copytree(seeded, home)
    world = Served(home)
    world.run(world.new_token())
    yield world
    world.close()


def described() -> dict[str, Any]:
    """The API's OpenAPI description, built without a database: it depends on the code alone
    (and the base URL), so schemathesis can make one test per operation when tests are collected."""
    settings = Settings(
        home=Path("/nonexistent"), database_url="", base_url="https://mailgate.test"
    )
    ctx = Context(settings=settings, db=cast(Database, None), secrets=cast(SecretBox, None))
    return create_api(ctx).openapi()


schema = schemathesis.openapi.from_dict(described())


@schema.include(path_regex=REACHING_OUT).parametrize()
@settings(BOUNDED, max_examples=5)
def test_operations_that_reach_out_fail_fast_as_described(
    case: schemathesis.Case[Any], served: Served
) -> None:
    case.validate_response(served.call(case), checks=CHECKS)


@schema.exclude(path_regex=REACHING_OUT).parametrize()
@BOUNDED
def test_every_operation_answers_as_described(case: schemathesis.Case[Any], served: Served) -> None:
    case.validate_response(served.call(case), checks=CHECKS)
