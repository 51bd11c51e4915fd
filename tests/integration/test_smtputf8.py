"""Notifications to addresses that are not ASCII, through the real Postfix: a domain goes as IDNA
and needs nothing of the server; a local part needs SMTPUTF8 (RFC 6531) — sent with it when
Postfix offers it (its default, `smtputf8_enable = yes`), dead at once with the reason when it
does not (`smtputf8_enable = no`), never retried."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.postfix import CUSTOMERS, DOMAINS, Postfix, start_postfix

from mailgate.context import Context
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.outbound import outbox
from mailgate.store.models import OutboxMessage, SmtpServer
from mailgate.store.vocabulary import OutboxKind
from mailgate.tracker import notify
from mailgate.unit import Unit

ALICE = "alice@example.test"
BOB = "bob@example.test"
JURGEN = "jürgen@example.net"
IDN_DOMAIN = "bücher.example"
IDN_CUSTOMER = "kunde@xn--bcher-kva.example"  # kunde@bücher.example, as DNS and Dovecot know it


def postfix_with(dovecot: Dovecot, **settings: str) -> Iterator[Postfix]:
    dovecot.add_users({**CUSTOMERS, IDN_CUSTOMER: "kunde-password"})
    instance = start_postfix(
        dovecot, domains=(*DOMAINS, "xn--bcher-kva.example"), settings=settings
    )
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def with_smtputf8(dovecot: Dovecot) -> Iterator[Postfix]:
    yield from postfix_with(dovecot)


@pytest.fixture
def without_smtputf8(dovecot: Dovecot) -> Iterator[Postfix]:
    yield from postfix_with(dovecot, smtputf8_enable="no")


async def smtp_server(ctx: Context, postfix: Postfix) -> None:
    options = SmtpOptions(
        host="127.0.0.1",
        port=postfix.submission_port,
        security="starttls",
        username=ALICE,
        password="alice-password",
        ca_file=str(postfix.ca_file),
    )
    await add_smtp(ctx, "out", options)


async def queue(ctx: Context, to: str, subject: str) -> int:
    """A notification, queued as the tracker queues them (`notify.queue`); its outbox id."""
    message = EmailMessage()
    message["From"] = ALICE
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.test>"
    message.set_content("Grüße")
    async with ctx.db.session() as session:
        server_id = (await session.scalars(select(SmtpServer.id))).one()
    message_id = await Unit.run(
        ctx, notify.queue, server_id, OutboxKind.COMMENT, None, [to], message
    )
    async with ctx.db.session() as session:
        query = select(OutboxMessage.id).where(OutboxMessage.message_id == message_id)
        return (await session.scalars(query)).one()


async def test_without_smtputf8_a_non_ascii_local_part_is_dead_at_once_and_a_domain_is_idna(
    ctx: Context, without_smtputf8: Postfix, clock: FakeClock
) -> None:
    await smtp_server(ctx, without_smtputf8)
    dead = await queue(ctx, JURGEN, "for jurgen")
    sent = [  # on the same connection, after it
        await queue(ctx, BOB, "for bob"),
        await queue(ctx, f"kunde@{IDN_DOMAIN}", "for the bookshop"),
    ]
    report = await outbox.flush(ctx)
    assert (report.dead, report.sent, report.retrying) == ([dead], sent, [])
    view = await outbox.outbox_message(ctx, dead)
    assert view["status"] == "dead" and view["attempts"] == 1
    assert view["last_error"] == (
        "send: the SMTP server does not accept non-ASCII addresses (SMTPUTF8): "
        f"{JURGEN} has a non-ASCII local part — No attempt can send it through this server, "
        "so it is dead at once: send through an SMTP server that offers SMTPUTF8 (Postfix with "
        "smtputf8_enable = yes, Exchange Online, Gmail) and retry it (`mailgate outbox retry`), "
        "or write to the person at an ASCII address."
    )
    [to_bob] = without_smtputf8.wait_for_delivery(BOB)
    assert b"Subject: for bob" in to_bob
    [to_the_bookshop] = without_smtputf8.wait_for_delivery(IDN_CUSTOMER)
    assert b"Subject: for the bookshop" in to_the_bookshop
    assert "jürgen" not in without_smtputf8.log_text()  # never offered to the server
    clock.advance(days=1)
    assert await outbox.flush(ctx) == outbox.FlushReport()  # dead: never tried again


async def test_with_smtputf8_a_non_ascii_local_part_is_sent_with_it(
    ctx: Context, with_smtputf8: Postfix
) -> None:
    await smtp_server(ctx, with_smtputf8)
    sent = [
        await queue(ctx, JURGEN, "for jurgen"),
        await queue(ctx, f"kunde@{IDN_DOMAIN}", "for the bookshop"),
    ]
    report = await outbox.flush(ctx)
    assert report.sent == sent, await outbox.list_outbox(ctx)
    # Postfix takes a UTF-8 address only with SMTPUTF8 declared ("Must declare SMTPUTF8 to send
    # unicode address"); its log names the recipient as it was sent.
    [to_the_bookshop] = with_smtputf8.wait_for_delivery(IDN_CUSTOMER)
    assert b"Subject: for the bookshop" in to_the_bookshop
    with_smtputf8.wait_for_empty_queue()
    assert f"to=<{JURGEN}>" in with_smtputf8.log_text()
    async with ctx.db.session() as session:  # the address itself in UTF-8, not encoded words
        raw = await session.scalar(select(OutboxMessage.raw).where(OutboxMessage.id == sent[0]))
    assert f"To: {JURGEN}\r\n".encode() in raw and b"=?utf-8?" not in raw
