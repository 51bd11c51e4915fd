"""No ping-pong: two projects whose mailboxes mail each other, and a customer whose mail client
answers everything automatically, run through poll/flush rounds over the real Postfix and Dovecot;
the number of messages stops growing."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import aiosmtplib
import pytest
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential
from tests.support.postfix import Postfix

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.outbound import outbox
from mailgate.runtime.imap_mailbox import poll_once
from mailgate.tracker.issues import list_issues
from mailgate.tracker.service import add_project, set_project

pytestmark = pytest.mark.stores("sqlite", "postgresql")

ALICE = "alice@example.test"  # project HELP's mailbox and sender
BOB = "bob@example.test"  # project SALES's mailbox and sender
CAROL = "carol@example.net"  # a customer whose mail client auto-answers, without saying so
ROUNDS = 6


async def project_with_mail(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postfix: Postfix,
    key: str,
    address: str,
) -> None:
    await add_project(ctx, key, key.title())
    credential = await microsoft_credential(ctx, emulator, name=f"m365-{key}", account=address)
    name = key.lower()
    common = {
        "host": "127.0.0.1",
        "username": address,
        "credential_id": credential.credential.id,
        "ca_file": str(dovecot.ca_file),
    }
    await add_mailbox(
        ctx,
        name,
        MailboxOptions(
            protocol="imap", port=dovecot.imaps_port, project=key, backlog="all", **common
        ),  # type: ignore[arg-type]
    )
    await add_smtp(
        ctx,
        name,
        SmtpOptions(port=postfix.submission_port, security="starttls", **common),  # type: ignore[arg-type]
    )
    await set_project(ctx, key, smtp=name)


async def carol_sends(
    postfix: Postfix, message: EmailMessage, recipients: list[str] | None = None
) -> None:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=postfix.submission_port,
        start_tls=True,
        tls_context=postfix.ssl_context(),
    )
    async with client:
        await client.login(CAROL, "carol-password")
        await client.send_message(message, sender=CAROL, recipients=recipients)


async def test_mailboxes_mailing_each_other_and_an_auto_answering_customer_settle(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postfix: Postfix,
    clock: FakeClock,
) -> None:
    await project_with_mail(ctx, emulator, dovecot, postfix, "HELP", ALICE)
    await project_with_mail(ctx, emulator, dovecot, postfix, "SALES", BOB)
    first = EmailMessage()
    first["From"] = CAROL
    first["To"] = f"{ALICE}, {BOB}"  # both desks: each answers, each sees the other's answer
    first["Subject"] = "Where is my order?"
    first["Message-ID"] = "<order@example.net>"
    first.set_content("It has not arrived.")
    await carol_sends(postfix, first)
    postfix.wait_for_empty_queue()

    answered = 0
    totals = []
    for _ in range(ROUNDS):
        await poll_once(ctx, "help")
        await poll_once(ctx, "sales")
        await outbox.flush(ctx)
        postfix.wait_for_empty_queue()
        # Carol's client answers every message it has not answered yet, with no
        # Auto-Submitted header: to mailgate it looks like a person's reply. A rule also
        # forwards each one, unchanged, to the other desk's mailbox.
        inbox = postfix.messages(CAROL)
        for raw in inbox[answered:]:
            received = email.message_from_bytes(raw, policy=policy.default)
            other = BOB if ALICE in str(received["From"]) else ALICE
            await carol_sends(postfix, received, recipients=[other])
            answer = EmailMessage()
            answer["From"] = CAROL
            answer["To"] = str(received["Reply-To"] or received["From"])
            answer["Subject"] = "Re: " + str(received["Subject"])
            answer["Message-ID"] = f"<auto{answered}@example.net>"
            answer["In-Reply-To"] = str(received["Message-ID"])
            answer.set_content("I am away; your message will be read later.")
            await carol_sends(postfix, answer)
            answered += 1
        postfix.wait_for_empty_queue()
        clock.advance(minutes=5)
        totals.append(sum(len(postfix.messages(user)) for user in (ALICE, BOB, CAROL)))
    # The exchange settles: the last rounds add nothing.
    assert totals[-1] == totals[-2] == totals[-3], totals
    assert totals[-1] < 20, totals
    issues = await list_issues(ctx)
    assert sorted(i["key"] for i in issues) == ["HELP-1", "SALES-1"]
    assert all(i["comments"] <= 2 for i in issues), issues
    assert totals[0] > 2  # the desks did answer (and were answered)
