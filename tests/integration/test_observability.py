"""What an operator watches: JSON log lines off a terminal, with the identifiers, and the
Prometheus metrics of `GET /metrics` and `mailgate worker --metrics-port`."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx2
import pytest
import structlog
from prometheus_client import REGISTRY
from tests.integration.test_database_faults import a_mailbox
from tests.support.cli import Cli
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import Timeline, microsoft_credential
from tests.support.mail import ALICE, message, wait_for_receipts, with_mailbox
from tests.support.server import free_port
from tests.support.web import web_client

from mailgate.context import Context
from mailgate.errors import Transient
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.mailboxes import destination_of
from mailgate.logs import configure_logging
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime.imap_mailbox import run_mailbox
from mailgate.tracker.service import add_project

CANARY_SENDER = "zebra-canary@sender.example"
CANARY_SUBJECT = "Giraffe canary subject"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def mail(subject: str = "Printer on fire", message_id: str = "<m1@example.net>") -> bytes:
    message = EmailMessage()
    message["From"] = f"Zebra <{CANARY_SENDER}>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content("It is burning.")
    return bytes(message)


def incoming(uid: int, raw: bytes) -> list[pipeline.Incoming]:
    return [pipeline.Incoming(pipeline.MessageRef(uidvalidity=1, uid=uid), raw)]


async def test_a_message_taken_counts_once_and_its_way_to_an_issue_is_timed(
    ctx: Context, clock: FakeClock
) -> None:
    mailbox = await a_mailbox(ctx)
    taken, quarantined = (
        sample("mailgate_messages_taken_total", mailbox="support"),
        sample("mailgate_messages_quarantined_total", mailbox="support"),
    )
    timed = sample("mailgate_mail_to_issue_seconds_count")
    under = {le: sample("mailgate_mail_to_issue_seconds_bucket", le=le) for le in ("2.5", "5.0")}
    found_at = clock()
    clock.advance(seconds=3)  # found, then 3 s until the commit
    for _ in range(2):  # the second time it is known: nothing counts again
        await pipeline.take_many(
            ctx, mailbox.id, incoming(1, mail()), destination=destination_of(mailbox),
            seen_at=found_at,
        )  # fmt: skip
    assert sample("mailgate_messages_taken_total", mailbox="support") == taken + 1
    assert sample("mailgate_messages_quarantined_total", mailbox="support") == quarantined
    assert sample("mailgate_mail_to_issue_seconds_count") == timed + 1
    assert sample("mailgate_mail_to_issue_seconds_bucket", le="2.5") == under["2.5"]
    assert sample("mailgate_mail_to_issue_seconds_bucket", le="5.0") == under["5.0"] + 1


async def test_quarantined_messages_count_and_are_not_timed(ctx: Context) -> None:
    mailbox = await a_mailbox(ctx)
    before = sample("mailgate_messages_quarantined_total", mailbox="support")
    timed = sample("mailgate_mail_to_issue_seconds_count")
    # A project that does not exist: the message is held.
    await pipeline.take_many(
        ctx, mailbox.id, incoming(1, mail()), destination=Destination(project="NOPE"),
        seen_at=ctx.clock(),
    )  # fmt: skip
    # Too large to fetch: recorded, left on the server.
    ref = pipeline.MessageRef(uidvalidity=1, uid=2)
    await pipeline.quarantine(ctx, mailbox.id, ref, 10**9, "too large")
    assert sample("mailgate_messages_quarantined_total", mailbox="support") == before + 2
    assert sample("mailgate_mail_to_issue_seconds_count") == timed


async def test_refreshes_and_their_failures_count_per_credential(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    credential = str(setup.credential.id)
    keeper = TokenKeeper(ctx)
    refreshed = sample("mailgate_token_refreshes_total", credential=credential)
    failed = sample(
        "mailgate_token_refresh_failures_total", credential=credential, reason="transient"
    )
    await keeper.refresh(setup.credential.id)
    assert sample("mailgate_token_refreshes_total", credential=credential) == refreshed + 1
    emulator.state.inject_fault(status=503, count=1)
    Timeline(clock, emulator).advance(hours=1)
    with pytest.raises(Transient):
        await keeper.refresh(setup.credential.id)
    assert sample("mailgate_token_refreshes_total", credential=credential) == refreshed + 1
    after = sample(
        "mailgate_token_refresh_failures_total", credential=credential, reason="transient"
    )
    assert after == failed + 1


async def test_metrics_page_shows_the_counters_and_the_outbox_but_nothing_a_sender_wrote(
    ctx: Context,
) -> None:
    mailbox = await a_mailbox(ctx)
    await pipeline.take_many(
        ctx, mailbox.id, incoming(1, mail(CANARY_SUBJECT, "<canary@example.net>")),
        destination=destination_of(mailbox), seen_at=ctx.clock(),
    )  # fmt: skip
    async for client in web_client(ctx):
        answer = await client.get("/metrics")  # open: counts only
    assert answer.status_code == 200
    text = answer.text
    for line in (
        'mailgate_messages_taken_total{mailbox="support"}',
        "# TYPE mailgate_messages_quarantined_total counter",
        "# TYPE mailgate_token_refreshes_total counter",
        "# TYPE mailgate_token_refresh_failures_total counter",
        "# TYPE mailgate_idle_connections gauge",
        "# TYPE mailgate_lease_moves_total counter",
        'mailgate_mail_to_issue_seconds_bucket{le="0.05"}',
        "mailgate_database_up 1",
        'mailgate_outbox_depth{status="dead"} 0',
        'mailgate_mailboxes{status="new"} 1',
    ):
        assert line in text
    assert 'mailgate_outbox_depth{status="pending"}' in text
    for secret_or_personal in (CANARY_SENDER, "Giraffe", "canary@example.net", "desk@example"):
        assert secret_or_personal not in text


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", "json")
    try:
        yield capsys
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_an_idle_mailbox_is_counted_and_its_lines_name_mailbox_credential_and_issue(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    json_logs: pytest.CaptureFixture[str],
) -> None:
    row = await with_mailbox(ctx, emulator, dovecot, poll_seconds=3600)
    ctx.sleep = asyncio.sleep  # real waits: this test watches a live connection
    idle_before = sample("mailgate_idle_connections")
    timed = sample("mailgate_mail_to_issue_seconds_count")
    stop = asyncio.Event()
    loop = asyncio.create_task(run_mailbox(ctx, "support", stop))

    async def idling(count: float) -> None:
        for _ in range(200):
            if sample("mailgate_idle_connections") == count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the IDLE connections never came to {count}")

    try:
        await idling(idle_before + 1)
        await asyncio.to_thread(dovecot.deliver, ALICE, message("pushed"))
        await wait_for_receipts(ctx, row.id, 1)
        await idling(idle_before + 1)  # back in IDLE after the message
        assert sample("mailgate_mail_to_issue_seconds_count") == timed + 1
    finally:
        stop.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert sample("mailgate_idle_connections") == idle_before
    lines = [json.loads(line) for line in json_logs.readouterr().err.splitlines() if line]
    [taken] = [line for line in lines if line["event"] == "message taken"]
    assert taken["mailbox"] == "support" and taken["credential"] == row.credential_id
    assert taken["issue"] == "HELP-1" and taken["message_id"] == "pushed@example.net"
    assert taken["logger"] == "mailgate.inbound.pipeline" and taken["level"] == "info"


async def test_a_command_off_a_terminal_logs_json_lines(
    ctx: Context, home: Path, tmp_path: Path
) -> None:
    await add_project(ctx, "HELP", "Help desk")  # in the database the command opens
    cli = Cli(home, MAILGATE_LOG_LEVEL="info")
    eml = tmp_path / "one.eml"
    eml.write_bytes(mail())
    done = await asyncio.to_thread(cli, "ingest", str(eml), "--project", "HELP")  # stderr: a pipe
    assert done.code == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    [taken] = [line for line in lines if line["event"] == "message taken"]
    assert taken["issue"] == "HELP-1" and taken["message_id"] == "m1@example.net"
    assert isinstance(taken["message"], int) and taken["status"] == "created"
    assert "mailbox" not in taken  # an ingested file came through none
    assert set(taken) >= {"timestamp", "level", "logger", "event"}


def test_a_worker_serves_its_metrics_when_asked(home: Path) -> None:
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailgate", "worker", "--metrics-port", str(port)],
        env=Cli(home, MAILGATE_LOG_LEVEL="info").env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx2.get(f"http://127.0.0.1:{port}/metrics")
                break
            except httpx2.ConnectError:
                assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
                assert time.monotonic() < deadline, "the worker's metrics never answered"
                time.sleep(0.1)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert "# TYPE mailgate_messages_taken_total counter" in answer.text
        assert "mailgate_database_up 1" in answer.text
        assert "# TYPE mailgate_mailboxes gauge" in answer.text
        assert httpx2.get(f"http://127.0.0.1:{port}/").status_code == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    said = worker.stderr.read().decode() if worker.stderr else ""
    served = [json.loads(line) for line in said.splitlines() if '"metrics served"' in line]
    assert served and served[0]["address"] == f"127.0.0.1:{port}"
