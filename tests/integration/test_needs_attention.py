"""The dashboard's first list: each thing that needs the admin appears when its cause is there
(brought about the way it happens: the provider refuses, a server is down, a message too large)
and goes when the admin has fixed it; errors first, then the oldest."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from tests.integration.test_notifications import take, with_smtp
from tests.integration.test_pipeline import mail
from tests.integration.test_smtp import BOB, queue_message, smtp_server
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import CLIENT_ID, microsoft_credential, reauthorize
from tests.support.mail import ALICE, message, with_mailbox
from tests.support.postfix import Postfix

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.inbound import quarantine
from mailgate.inbound.mailboxes import MailboxOptions, set_mailbox
from mailgate.oauth.credentials import refresh_credential
from mailgate.oauth.integrations import IntegrationOptions, set_integration
from mailgate.outbound import outbox
from mailgate.outbound.alerts import run_check
from mailgate.runtime.imap_mailbox import poll_once
from mailgate.runtime.overview import Attention, AttentionKind, Severity, needs_attention
from mailgate.store.models import OutboxMessage

pytestmark = pytest.mark.stores("sqlite", "postgresql")


async def kinds(ctx: Context) -> list[AttentionKind]:
    return [item.kind for item in await needs_attention(ctx)]


async def only(ctx: Context) -> Attention:
    [item] = await needs_attention(ctx)
    return item


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_credential_the_provider_refuses_asks_for_reauthorization_until_it_is_given(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    assert await needs_attention(ctx) == []
    clock.advance(minutes=5)
    emulator.state.revoke_account("microsoft", setup.credential.account, revoke_access_tokens=True)
    assert not (await refresh_credential(ctx, setup.credential.id))["ok"]
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.REAUTHORIZE, Severity.ERROR)
    assert (item.action, item.href) == ("Re-authorize", f"/credentials/{setup.credential.id}")
    assert item.subject == f"credential {setup.credential.id} ({setup.credential.account})"
    assert item.since == clock()  # when the provider refused, not when the credential began
    assert "AADSTS50173" in item.cause  # the provider's refusal, explained
    await reauthorize(ctx, emulator, setup)
    assert await needs_attention(ctx) == []


async def test_a_refresh_that_keeps_failing_appears_after_the_third_failure_and_goes_when_one_works(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    emulator.state.inject_fault(status=503, count=None)
    started = clock()
    for attempt in range(3):
        if attempt == 1:
            assert await needs_attention(ctx) == []  # one failure may be a blip: no alarm
        assert not (await refresh_credential(ctx, setup.credential.id))["ok"]
        clock.advance(minutes=10)
    item = await only(ctx)
    assert (item.kind, item.action) == (AttentionKind.REFRESH_FAILING, "Refresh now")
    assert "3 times in a row" in item.cause and item.since == started
    emulator.state.clear_faults()
    assert (await refresh_credential(ctx, setup.credential.id))["ok"]
    assert await needs_attention(ctx) == []


async def test_a_client_secret_expiring_then_expired_then_replaced(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    await microsoft_credential(ctx, emulator)
    expires = (clock() + timedelta(days=20)).date()
    await set_integration(ctx, "m365", IntegrationOptions(client_secret_expires=expires))
    assert await needs_attention(ctx) == []  # 20 days: not yet
    clock.advance(days=10)
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.SECRET_EXPIRING, Severity.WARNING)
    assert (item.action, item.href) == ("Enter a new client secret", "/integrations/m365")
    assert "in 10 day(s)" in item.cause and item.since is not None
    assert item.since.date() == expires - timedelta(days=14)
    clock.advance(days=11)
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.SECRET_EXPIRED, Severity.ERROR)
    assert item.since is not None and item.since.date() == expires
    later = expires + timedelta(days=730)
    await set_integration(
        ctx, "m365", IntegrationOptions(client_secret="a-new-secret", client_secret_expires=later)
    )
    assert await needs_attention(ctx) == []


async def test_a_client_the_provider_refuses_asks_for_a_new_secret(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    emulator.state.update_client("microsoft", CLIENT_ID, client_secret="rotated-at-the-provider")
    assert not (await refresh_credential(ctx, setup.credential.id))["ok"]
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.CLIENT_REJECTED, Severity.ERROR)
    assert (item.action, item.href) == ("Enter a new client secret", "/integrations/m365")
    await set_integration(ctx, "m365", IntegrationOptions(client_secret="rotated-at-the-provider"))
    assert await needs_attention(ctx) == []
    assert (await refresh_credential(ctx, setup.credential.id))["ok"]


async def test_a_failing_mailbox_says_why_and_goes_when_it_reads_mail_again(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, clock: FakeClock
) -> None:
    await with_mailbox(ctx, emulator, dovecot)
    await poll_once(ctx, "support")
    await set_mailbox(ctx, "support", MailboxOptions(port=closed_port()))
    with pytest.raises(MailgateError):
        await poll_once(ctx, "support")
    await run_check(ctx)  # the alerts' check opens the incident: that is "since"
    opened = clock()
    clock.advance(minutes=20)
    with pytest.raises(MailgateError):
        await poll_once(ctx, "support")
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.MAILBOX_FAILING, Severity.ERROR)
    assert (item.action, item.href) == ("Test the connection", "/mailboxes/support")
    assert item.cause.startswith(f"Mail to {ALICE} is not read (failing): ")
    assert item.since == opened  # failing since, not last seen failing
    await set_mailbox(ctx, "support", MailboxOptions(port=dovecot.imaps_port))
    await poll_once(ctx, "support")
    assert await needs_attention(ctx) == []


async def test_a_mailbox_failing_because_its_credential_does_is_one_item_the_credential(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await with_mailbox(ctx, emulator, dovecot)
    emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    with pytest.raises(MailgateError):
        await poll_once(ctx, "support")
    item = await only(ctx)
    assert (item.kind, item.href) == (AttentionKind.REAUTHORIZE, "/credentials/1")


async def test_an_smtp_server_that_is_down_appears_and_goes_when_mail_goes_out(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, clock: FakeClock
) -> None:
    await smtp_server(ctx, emulator, postfix)
    await queue_message(ctx, BOB, "while down")
    postfix.stop()
    await outbox.flush(ctx)
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.SMTP_REFUSING, Severity.ERROR)
    assert (item.action, item.href) == ("Send a test message", "/smtp/out")
    assert item.cause.startswith(f"Mail from {ALICE} is not sent (failing): ")
    assert "refused the connection" in item.cause  # the catalog's diagnosis
    postfix.start()
    clock.advance(minutes=2)
    assert len((await outbox.flush(ctx)).sent) == 1
    assert await needs_attention(ctx) == []


async def test_dead_letters_are_counted_until_retried(ctx: Context, clock: FakeClock) -> None:
    await with_smtp(ctx)
    await take(ctx, mail())
    clock.advance(minutes=1)
    await take(ctx, mail("Second", message_id="<second@example.net>"))
    async with ctx.db.session() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status="dead"))
        first = await session.scalar(select(OutboxMessage.created_at).order_by(OutboxMessage.id))
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.DEAD_LETTERS, Severity.ERROR)
    assert (item.action, item.href) == ("Retry the dead messages", "/outbox")
    assert item.cause.startswith("2 message(s) could not be sent") and item.since == first
    # Mail goes out again: the dead ones still wait for the admin, but nothing is broken now.
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == 2).values(status="sent")
        )
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.DEAD_LETTERS, Severity.WARNING)
    assert item.cause.startswith("1 message(s)")
    assert await outbox.retry(ctx, None) == 1
    assert await needs_attention(ctx) == []


async def test_quarantined_mail_is_counted_until_it_is_retried(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("huge", size=50_000))
    await with_mailbox(ctx, emulator, dovecot, max_message_bytes=20_000, backlog="all")
    await poll_once(ctx, "support")
    item = await only(ctx)
    assert (item.kind, item.severity) == (AttentionKind.QUARANTINE, Severity.WARNING)
    assert (item.action, item.href) == ("Review the quarantined messages", "/quarantine")
    assert item.cause.startswith("1 received message(s)")
    [held] = await quarantine.list_quarantine(ctx)
    await set_mailbox(ctx, "support", MailboxOptions(max_message_bytes=100_000))
    await quarantine.retry(ctx, held["id"])
    assert await needs_attention(ctx) == []
    assert len((await poll_once(ctx, "support")).taken) == 1
    assert await needs_attention(ctx) == []


async def test_errors_come_first_then_the_oldest(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    await microsoft_credential(ctx, emulator, name="old-app", account="bob@contoso.example")
    today = clock().date()
    await set_integration(  # expiring: a warning that began four days ago
        ctx, "m365", IntegrationOptions(client_secret_expires=today + timedelta(days=10))
    )
    await set_integration(  # expired three days ago: an error
        ctx, "old-app", IntegrationOptions(client_secret_expires=today - timedelta(days=3))
    )
    emulator.state.revoke_account("microsoft", setup.credential.account, revoke_access_tokens=True)
    await refresh_credential(ctx, setup.credential.id)  # an error since now
    assert [(item.kind, item.subject) for item in await needs_attention(ctx)] == [
        (AttentionKind.SECRET_EXPIRED, "integration old-app"),
        (AttentionKind.REAUTHORIZE, f"credential 1 ({setup.credential.account})"),
        (AttentionKind.SECRET_EXPIRING, "integration m365"),
    ]
    assert [item.as_json()["kind"] for item in await needs_attention(ctx)] == [
        "secret-expired",
        "reauthorize",
        "secret-expiring",
    ]
