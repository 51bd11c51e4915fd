"""Sending over a real Postfix that checks OAuth 2.0 tokens through Dovecot, reading what was
delivered back over IMAP: XOAUTH2 and OAUTHBEARER, STARTTLS and implicit TLS, an expired token,
a revoked grant, a server that is down — and the full round trip of a customer's request."""

from __future__ import annotations

import asyncio
import dataclasses
import email
from email import policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import Setup, microsoft_credential, reauthorize
from tests.support.mail import ALICE, with_mailbox
from tests.support.postfix import Postfix
from tests.support.steps import heard_live

from mailgate.context import Context
from mailgate.mail import smtp
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.outbound import outbox
from mailgate.outbound.alerts import run_check
from mailgate.outbound.smtp_test import STEPS, probe_smtp
from mailgate.runtime.imap_mailbox import poll_once
from mailgate.store.models import OutboxMessage, SmtpServer
from mailgate.tracker.issues import comment_as_agent, show_issue

# Representative tests run on PostgreSQL too (the stores marker below); the rest on SQLite.

BOB = "bob@example.test"
CAROL = "carol@example.net"


async def smtp_server(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, **options: object
) -> Setup:
    credential = await microsoft_credential(ctx, emulator, name="m365-out", account=ALICE)
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": postfix.submission_port,
        "security": "starttls",
        "username": ALICE,
        "credential_id": credential.credential.id,
        "ca_file": str(postfix.ca_file),
    }
    values.update(options)
    await add_smtp(ctx, "out", SmtpOptions(**values))  # type: ignore[arg-type]
    return credential


def subjects(raws: list[bytes]) -> list[str]:
    return [str(email.message_from_bytes(r, policy=policy.default)["Subject"]) for r in raws]


async def test_smtp_test_sends_with_xoauth2_over_starttls(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix
) -> None:
    await smtp_server(ctx, emulator, postfix, sasl_mechanism="XOAUTH2")
    report = await probe_smtp(ctx, "out", BOB)
    assert report.ok, report.as_json()
    steps = [(s.step, s.ok) for s in report.steps]
    assert [s for s, _ in steps] == list(
        ("resolve", "connect", "tls", "greeting", "token", "authenticate", "send")
    )
    assert report.steps[5].detail == "XOAUTH2"
    [delivered] = postfix.wait_for_delivery(BOB)
    message = email.message_from_bytes(delivered, policy=policy.default)
    assert message["Subject"] == "mailgate test message (out)" and message["From"].endswith(
        f"<{ALICE}>"
    )


async def test_smtp_test_steps_arrive_while_it_runs(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix
) -> None:
    """What a page shows live: each step reaches the consumer of `live` before the test ends."""
    await smtp_server(ctx, emulator, postfix)
    arrived, report = await heard_live(lambda on_step: probe_smtp(ctx, "out", BOB, on_step=on_step))
    assert arrived == [(step, False) for step in STEPS], report.as_json()
    assert report.ok and [s.step for s in report.steps] == list(STEPS)
    postfix.wait_for_delivery(BOB)


async def test_oauthbearer_over_implicit_tls(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix
) -> None:
    await smtp_server(
        ctx,
        emulator,
        postfix,
        port=postfix.smtps_port,
        security="ssl",
        sasl_mechanism="OAUTHBEARER",
    )
    report = await probe_smtp(ctx, "out", BOB)
    assert report.ok, report.as_json()
    assert report.steps[5].detail == "OAUTHBEARER"
    postfix.wait_for_delivery(BOB)


async def test_an_expired_token_is_refreshed_once_and_the_send_retried(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix
) -> None:
    await smtp_server(ctx, emulator, postfix)
    emulator.state.advance(2 * 3600)  # the server's view: expired; mailgate's clock: still valid
    report = await probe_smtp(ctx, "out", BOB)
    assert report.ok, report.as_json()
    assert emulator.state.count_requests(endpoint="token", grant_type="refresh_token") == 1
    postfix.wait_for_delivery(BOB)


async def test_a_refused_sign_in_is_diagnosed(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, dovecot: Dovecot
) -> None:
    # The token is Alice's; logging in as Bob with it fails at Dovecot, even after a refresh.
    await smtp_server(ctx, emulator, postfix, username=BOB, from_address=BOB)
    report = await probe_smtp(ctx, "out", BOB)
    assert not report.ok
    failed = report.steps[-1]
    assert failed.step == "authenticate" and "535" in failed.detail
    assert report.diagnosis and "--username" in report.diagnosis
    assert postfix.messages(BOB) == []


@pytest.mark.parametrize("port", ["submission_port", "smtps_port"])
async def test_an_untrusted_certificate_is_diagnosed(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, port: str
) -> None:
    # Without its private CA, the test server's certificate is trusted by nobody: by STARTTLS
    # and by implicit TLS alike, the failure is the certificate's, at the TLS step.
    security = "starttls" if port == "submission_port" else "ssl"
    await smtp_server(
        ctx, emulator, postfix, port=getattr(postfix, port), security=security, ca_file=None
    )
    report = await probe_smtp(ctx, "out", BOB)
    failed = report.steps[-1]
    assert (failed.step, failed.ok) == ("tls", False)
    assert "CERTIFICATE_VERIFY_FAILED" in failed.detail
    assert report.diagnosis and "--ca-file" in report.diagnosis


async def alert_kinds(ctx: Context) -> list[str]:
    """PROBLEM / RECOVERED of the alerts in the outbox, in the order they were queued."""
    views = [v for v in await outbox.list_outbox(ctx) if v["kind"] == "alert"]
    return [v["subject"].removeprefix("[mailgate] ").split(":")[0] for v in views]


async def queue_message(ctx: Context, to: str, subject: str) -> None:
    """A notification as the tracker writes it (the outbox's input)."""
    message = EmailMessage()
    message["From"] = ALICE
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.test>"
    message.set_content("hello")
    async with ctx.db.session() as session, session.begin():
        server = (await session.scalars(select(SmtpServer))).one()
        session.add(
            OutboxMessage(
                smtp_server_id=server.id,
                kind="comment",
                recipients=[to],
                message_id=message["Message-ID"].strip("<>"),
                raw=message.as_bytes(policy=policy.SMTP),
                status="pending",
                next_attempt_at=ctx.clock(),
            )
        )


async def three_queued(ctx: Context, emulator: RunningEmulator, postfix: Postfix) -> None:
    """An SMTP server signing in with OAuth 2.0, and three messages to Bob waiting for it."""
    await smtp_server(ctx, emulator, postfix)
    for n in range(3):
        await queue_message(ctx, BOB, f"message {n}")


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_server_that_is_down_loses_nothing(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, clock: FakeClock
) -> None:
    await smtp_server(ctx, emulator, postfix)
    await queue_message(ctx, BOB, "while down")
    postfix.stop()
    report = await outbox.flush(ctx)
    assert report.retrying and not report.sent
    [view] = await outbox.list_outbox(ctx)
    assert view["status"] == "pending" and "connect" in view["last_error"]
    assert await outbox.flush(ctx) == outbox.FlushReport()  # not due yet: backoff
    postfix.start()
    clock.advance(minutes=2)
    assert len((await outbox.flush(ctx)).sent) == 1
    assert subjects(postfix.wait_for_delivery(BOB)) == ["while down"]
    clock.advance(hours=1)
    assert await outbox.flush(ctx) == outbox.FlushReport()  # sent once, never again


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_revoked_grant_makes_the_outbox_wait_until_reauthorized(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, clock: FakeClock
) -> None:
    ctx = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, admin_email=CAROL))
    setup = await smtp_server(ctx, emulator, postfix)
    await queue_message(ctx, BOB, "after revocation")
    # The account's sessions are revoked (a password reset): the token and the grant stop working.
    emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    report = await outbox.flush(ctx)
    await run_check(ctx)
    assert report.waiting and not report.sent
    view, alert = await outbox.list_outbox(ctx)
    assert alert["kind"] == "alert" and alert["status"] == "pending"
    assert view["status"] == "pending" and "authorize" in view["last_error"]
    async with ctx.db.session() as session:
        server = (await session.scalars(select(SmtpServer))).one()
    assert server.status == "auth-failed"
    # The admin signs the account in again: the same credential, new tokens.
    emulator.state.advance(1)
    again = await reauthorize(ctx, emulator, setup)
    assert again.id == setup.credential.id
    await run_check(ctx)
    clock.advance(minutes=20)
    assert len((await outbox.flush(ctx)).sent) == 3  # the notification, and the two alerts
    assert subjects(postfix.wait_for_delivery(BOB)) == ["after revocation"]
    alerts = subjects(postfix.wait_for_delivery(CAROL, 2))
    # Postfix may deliver two messages in either order; the outbox holds them in order.
    assert sorted(a.split(":")[0] for a in alerts) == ["[mailgate] PROBLEM", "[mailgate] RECOVERED"]
    assert await alert_kinds(ctx) == ["PROBLEM", "RECOVERED"]
    problem = next(a for a in alerts if "PROBLEM" in a)
    assert "credential" in problem and "needs-reauthorization" in problem
    clock.advance(hours=2)
    await run_check(ctx)
    await outbox.flush(ctx)
    assert len(postfix.messages(CAROL)) == 2  # one incident: one alert, one recovery


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_dead_smtp_server_gives_one_alert_and_one_recovery(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, clock: FakeClock
) -> None:
    admin = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, admin_email=BOB))
    await smtp_server(admin, emulator, postfix)
    await queue_message(admin, CAROL, "a notification")
    postfix.stop()
    for _ in range(3):  # the server stays down for a while
        await outbox.flush(admin)
        await run_check(admin)
        clock.advance(minutes=20)
    postfix.start()
    for _ in range(3):
        await outbox.flush(admin)
        await run_check(admin)
        clock.advance(minutes=20)
    alerts = subjects(postfix.wait_for_delivery(BOB, 2))
    assert sorted(a.split(":")[0] for a in alerts) == ["[mailgate] PROBLEM", "[mailgate] RECOVERED"]
    assert await alert_kinds(admin) == ["PROBLEM", "RECOVERED"]
    assert subjects(postfix.wait_for_delivery(CAROL)) == ["a notification"]


@pytest.mark.stores("sqlite", "postgresql")
async def test_the_round_trip(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postfix: Postfix,
    clock: FakeClock,
) -> None:
    """A customer writes → an issue → the acknowledgement reaches the customer's mailbox → an
    agent comments → the customer gets it → replies from their mail client quoting everything →
    a comment on the same issue holding only the new text. Real SMTP and IMAP only."""
    await with_mailbox(ctx, emulator, dovecot, backlog="all")  # support = Alice's mailbox
    await smtp_server(ctx, emulator, postfix)
    customer = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=postfix.submission_port,
        start_tls=True,
        tls_context=postfix.ssl_context(),
    )

    async def customer_sends(message: EmailMessage) -> None:
        async with customer:
            await customer.login(CAROL, "carol-password")
            await customer.send_message(message)

    first = EmailMessage()
    first["From"] = f"Carol <{CAROL}>"
    first["To"] = ALICE
    first["Subject"] = "The printer is on fire"
    first["Message-ID"] = "<first@example.net>"
    first.set_content("Please help, it is burning.")
    await customer_sends(first)
    postfix.wait_for_delivery(ALICE)
    assert len((await poll_once(ctx, "support")).taken) == 1
    assert (await outbox.flush(ctx)).sent
    [ack] = postfix.wait_for_delivery(CAROL)
    assert subjects([ack]) == ["[HELP-1] The printer is on fire"]

    await comment_as_agent(ctx, "HELP-1", "We are sending a technician.", None)
    assert (await outbox.flush(ctx)).sent
    _, agent_raw = postfix.wait_for_delivery(CAROL, 2)
    agent = email.message_from_bytes(agent_raw, policy=policy.default)
    assert "We are sending a technician." in agent.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # Carol answers the agent's message from Outlook: the history quoted below her text.
    reply = EmailMessage()
    reply["From"] = f"Carol <{CAROL}>"
    reply["To"] = str(agent["Reply-To"])
    reply["Subject"] = "RE: " + str(agent["Subject"])
    reply["Message-ID"] = "<reply@example.net>"
    reply["In-Reply-To"] = str(agent["Message-ID"])
    reply["References"] = f"{agent['References']} {agent['Message-ID']}"
    quoted = agent.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    reply.set_content(
        "Thank you, the fire is out now.\n\n"
        "-----Original Message-----\n"
        f"From: {agent['From']}\nSent: Monday\nTo: Carol\nSubject: {agent['Subject']}\n\n" + quoted
    )
    await customer_sends(reply)
    postfix.wait_for_delivery(ALICE, 2)
    clock.advance(seconds=5)
    assert len((await poll_once(ctx, "support")).taken) == 1
    issue = await show_issue(ctx, "HELP-1")
    assert [c["body"].strip() for c in issue["comments"]] == [
        "We are sending a technician.",
        "Thank you, the fire is out now.",
    ]
    # Carol's own comment is not echoed back to her; nobody else watches: nothing more to send.
    await outbox.flush(ctx)
    clock.advance(seconds=5)
    assert len(postfix.messages(CAROL)) == 2


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_crash_in_the_middle_of_a_send_loses_nothing(
    ctx: Context,
    emulator: RunningEmulator,
    postfix: Postfix,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await smtp_server(ctx, emulator, postfix)
    await queue_message(ctx, BOB, "interrupted")

    async def killed(*_args: object, **_kwargs: object) -> None:
        raise asyncio.CancelledError  # the process stops in the middle of the transaction

    monkeypatch.setattr(smtp, "transact", killed)
    with pytest.raises(asyncio.CancelledError):
        await outbox.flush(ctx)
    monkeypatch.undo()
    assert await outbox.flush(ctx) == outbox.FlushReport()  # still leased to the dead process
    clock.advance(minutes=16)  # its lease runs out: another process sends it
    assert len((await outbox.flush(ctx)).sent) == 1
    assert subjects(postfix.wait_for_delivery(BOB)) == ["interrupted"]


@pytest.mark.stores("sqlite", "postgresql")
async def test_messages_another_worker_took_over_are_not_sent_twice(
    ctx: Context,
    emulator: RunningEmulator,
    postfix: Postfix,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await three_queued(ctx, emulator, postfix)
    real_sent = outbox._sent
    taken_by_other: list[int] = []

    async def slow_worker(*args: Any, **kwargs: Any) -> None:
        await real_sent(*args, **kwargs)
        if not taken_by_other:
            # This worker stalls past its lease; another one claims what is left.
            clock.advance(minutes=16)
            taken_by_other.extend(m.id for m in await outbox._claim(ctx, "other-worker"))

    monkeypatch.setattr(outbox, "_sent", slow_worker)
    report = await outbox.flush(ctx)
    assert report.sent == [1] and taken_by_other == [2, 3]
    assert subjects(postfix.wait_for_delivery(BOB)) == ["message 0"]


async def test_provider_defaults_fill_only_what_is_not_set(
    ctx: Context, emulator: RunningEmulator
) -> None:
    from mailgate.mail.smtp_servers import set_smtp, smtp_view

    setup = await microsoft_credential(ctx, emulator, name="m365-out", account=ALICE)
    row, warnings = await add_smtp(ctx, "out", SmtpOptions(credential_id=setup.credential.id))
    assert warnings == []
    view = smtp_view(row)
    assert (view["host"], view["port"], view["security"]) == ("smtp.office365.com", 587, "starttls")
    assert (view["username"], view["from"]) == (ALICE, ALICE)
    await set_smtp(ctx, "out", SmtpOptions(host="relay.contoso.example", port=2525))
    row, _ = await set_smtp(ctx, "out", SmtpOptions(credential_id=setup.credential.id))
    assert (row.host, row.port, row.username) == ("relay.contoso.example", 2525, ALICE)
