"""Reading a POP3 mailbox: UIDL tracking, so a message left on the server is never taken twice;
DELE only after the message is committed (and only when --after delete).

POP3 has no flags: `--after seen` leaves the message on the server, remembered by its UIDL; a
backlog of `unseen` means everything there (POP3 cannot tell what was read).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from mailgate.backoff import Backoff
from mailgate.context import Context
from mailgate.errors import NeedsReauthorization, Transient
from mailgate.inbound import pipeline
from mailgate.inbound.mailboxes import destination_of
from mailgate.logs import bind
from mailgate.mail import sasl
from mailgate.mail.connection import ConnectionLost
from mailgate.mail.pop3 import AuthenticationFailed, Pop3Client, Pop3Error
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime import leases
from mailgate.runtime.connect import signed_in
from mailgate.runtime.imap_mailbox import (
    PollReport,
    load,
    load_or_wait,
    report_status,
    set_status,
)
from mailgate.runtime.pause import wait_or_stop
from mailgate.store.models import Mailbox, Receipt
from mailgate.store.vocabulary import MailboxStatus, ReceiptStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Known:
    id: int
    status: str
    post_action_done_at: object
    post_action: str | None


async def _known(ctx: Context, mailbox_id: int) -> dict[str, _Known]:
    """UIDL → what was taken (only the columns needed: not the stored messages)."""
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(
                    Receipt.uidl,
                    Receipt.id,
                    Receipt.status,
                    Receipt.post_action_done_at,
                    Receipt.post_action,
                ).where(Receipt.mailbox_id == mailbox_id, Receipt.uidl.is_not(None))
            )
        ).all()
    return {str(uidl): _Known(rid, status, done, then) for uidl, rid, status, done, then in rows}


async def process(
    ctx: Context, pop: Pop3Client, mailbox: Mailbox, *, dry_run: bool = False
) -> PollReport:
    """Take every message not taken before; DELE (with --after delete) after the commit, and
    QUIT, which ends the session: the deletions take effect only then."""
    report = PollReport(found_at=ctx.clock())
    numbers = {uidl: number for number, uidl in (await pop.uidl()).items()}
    sizes = await pop.sizes()
    known = await _known(ctx, mailbox.id)
    first_time = mailbox.uidvalidity is None
    new = [uidl for uidl in numbers if uidl not in known]
    if dry_run:
        report.would_take = (
            [numbers[u] for u in new] if not (first_time and mailbox.backlog == "none") else []
        )
        return report
    deletes: list[int] = []
    # Post-actions a crash left pending: the messages were committed but not deleted.
    pending = [
        (uidl, r) for uidl, r in known.items() if r.post_action_done_at is None and uidl in numbers
    ]
    nothing_to_do: list[int] = []
    for uidl, receipt in pending:
        action = receipt.post_action or mailbox.after
        if action == "delete" and receipt.status != ReceiptStatus.QUARANTINED:
            deletes.append(receipt.id)
            await pop.dele(numbers[uidl])
        else:
            # POP3 has no flags: "seen" leaves the message as it is. Done, or it would be
            # counted as pending at every poll.
            nothing_to_do.append(receipt.id)
    await pipeline.post_actions_done(ctx, nothing_to_do)
    report.post_actions_finished = len(pending)
    for uidl in new:
        number = numbers[uidl]
        ref = pipeline.MessageRef(uidl=uidl)
        if first_time and mailbox.backlog == "none":
            await pipeline.quarantine(
                ctx,
                mailbox.id,
                ref,
                sizes.get(number, 0),
                "there before the mailbox was added (--backlog none)",
                status=ReceiptStatus.SKIPPED,
            )
            continue
        listed = sizes.get(number, 0)
        raw = None
        if listed <= mailbox.max_message_bytes:
            # None: longer than the server listed it, and over the limit
            raw = await pop.retrieve(number, mailbox.max_message_bytes)
        if raw is None:
            reason = f"{listed} bytes, over the limit of {mailbox.max_message_bytes} (--max-message-bytes); left on the server"
            await pipeline.quarantine(ctx, mailbox.id, ref, listed, reason)
            report.quarantined.append(number)
            continue
        taken = await pipeline.take(
            ctx, mailbox.id, ref, raw, destination=destination_of(mailbox), seen_at=report.found_at
        )
        (report.taken if taken.new else report.skipped).append(number)
        if taken.status == ReceiptStatus.QUARANTINED:
            report.quarantined.append(number)  # kept on the server for a retry
            await pipeline.post_actions_done(ctx, [taken.receipt_id])
        elif (taken.post_action or mailbox.after) == "delete":
            await pop.dele(number)
            deletes.append(taken.receipt_id)
        else:
            await pipeline.post_actions_done(ctx, [taken.receipt_id])
    if first_time:
        async with ctx.db.session() as db, db.begin():
            row = await db.get(Mailbox, mailbox.id)
            assert row is not None
            row.uidvalidity = 0  # POP3: "the backlog policy has been applied"
        mailbox.uidvalidity = 0
    # DELE takes effect at QUIT (RFC 1939 §6): only then are the deletions done.
    await pop.quit()
    for receipt_id in deletes:
        await pipeline.post_actions_done(ctx, [receipt_id])
    return report


async def poll_once(
    ctx: Context, name: str, *, keeper: TokenKeeper | None = None, dry_run: bool = False
) -> PollReport:
    keeper = keeper or TokenKeeper(ctx)
    mailbox = await load(ctx, name)
    bind(mailbox=name, credential=mailbox.credential_id)
    try:
        async with leases.holding(ctx, mailbox.id, keeper.owner, wait=leases.LEASE_SECONDS + 2):
            mailbox = await load(ctx, name)
            async with signed_in(ctx, keeper, mailbox, Pop3Client) as pop:
                report = await process(ctx, pop, mailbox, dry_run=dry_run)
    except NeedsReauthorization as exc:
        await set_status(ctx, mailbox.id, MailboxStatus.NEEDS_REAUTHORIZATION, str(exc))
        raise
    except (ConnectionLost, Pop3Error, sasl.NoOAuthMechanism) as exc:
        status = (
            MailboxStatus.AUTH_FAILED
            if isinstance(exc, AuthenticationFailed)
            else MailboxStatus.FAILING
        )
        await set_status(ctx, mailbox.id, status, str(exc))
        raise Transient(f"Mailbox {name!r}: {exc}") from None
    if not dry_run:
        await set_status(ctx, mailbox.id, MailboxStatus.POLLING)
    return report


async def run_pop3_mailbox(
    ctx: Context, name: str, stop: asyncio.Event, *, keeper: TokenKeeper | None = None
) -> None:
    """Poll a POP3 mailbox every poll interval until `stop` (POP3 has no push)."""
    keeper = keeper or TokenKeeper(ctx)
    backoff = Backoff()
    while not stop.is_set():
        mailbox = await load_or_wait(ctx, name, stop, backoff)
        if mailbox is None:
            continue
        bind(mailbox=name, credential=mailbox.credential_id)  # this task's lines
        wait = float(mailbox.poll_seconds)
        try:
            async with signed_in(ctx, keeper, mailbox, Pop3Client) as pop:
                await process(ctx, pop, mailbox)
            await set_status(ctx, mailbox.id, MailboxStatus.POLLING)
            backoff.reset()
        except NeedsReauthorization as exc:
            await set_status(ctx, mailbox.id, MailboxStatus.NEEDS_REAUTHORIZATION, str(exc))
        except AuthenticationFailed as exc:
            # Refused even after one refresh: say why, and don't knock again for a while.
            await set_status(ctx, mailbox.id, MailboxStatus.AUTH_FAILED, str(exc))
            wait = max(wait, 900.0)
        except (ConnectionLost, Pop3Error) as exc:
            await report_status(ctx, mailbox.id, MailboxStatus.FAILING, str(exc))
            wait = backoff.next()
        except Exception as exc:  # the loop survives anything: log, say it, back off, retry
            if not isinstance(exc, Transient | sasl.NoOAuthMechanism | OSError):
                log.exception("mailbox loop error", mailbox=name)
            wait = backoff.next()
            # Logged first: should the database be what fails, the status cannot be written.
            log.warning("mailbox failed", mailbox=name, error=str(exc), retry_in=wait)
            await report_status(
                ctx, mailbox.id, MailboxStatus.FAILING, f"{exc}; retrying in {wait:.0f} s"
            )
        await wait_or_stop(ctx, stop, wait)
