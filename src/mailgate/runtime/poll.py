"""`mailbox poll`: take everything there now, over the mailbox's own protocol, then stop."""

from __future__ import annotations

from mailgate.context import Context
from mailgate.runtime import imap_mailbox, pop3_mailbox
from mailgate.runtime.imap_mailbox import PollReport, load
from mailgate.store.vocabulary import Protocol


async def poll_mailbox(ctx: Context, name: str, *, dry_run: bool = False) -> PollReport:
    """One poll of the mailbox `name` (IMAP or POP3), as its loop would take it."""
    mailbox = await load(ctx, name)
    poll = imap_mailbox.poll_once if mailbox.protocol == Protocol.IMAP else pop3_mailbox.poll_once
    return await poll(ctx, name, dry_run=dry_run)
