"""Shared set-ups for the mailbox tests: a message, a mailbox at the test Dovecot."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.runtime.imap_mailbox import receipts_of
from mailgate.store.models import Mailbox
from mailgate.tracker.service import add_project, find_project
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential

ALICE = "alice@example.test"


def message(subject: str, size: int = 0) -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{subject.replace(' ', '-')}@example.net>"
    mail.set_content(f"about {subject}\n" + "x" * size)
    return bytes(mail)


async def with_mailbox(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, **options: object
) -> Mailbox:
    exists = await ctx.db.run(find_project, "HELP")
    if exists is None:
        await add_project(ctx, "HELP", "Help desk")
    cred = await microsoft_credential(ctx, emulator, account=ALICE)
    values: dict[str, object] = {
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": dovecot.imaps_port,
        "username": ALICE,
        "credential_id": cred.credential.id,
        "ca_file": str(dovecot.ca_file),
        "project": "HELP",
    }
    values.update(options)
    row, _ = await add_mailbox(ctx, "support", MailboxOptions(**values))  # type: ignore[arg-type]
    return row


async def wait_for_receipts(ctx: Context, mailbox_id: int, count: int, seconds: float = 15) -> None:
    for _ in range(int(seconds * 20)):
        if len(await receipts_of(ctx, mailbox_id)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} message(s) taken within {seconds} s")
