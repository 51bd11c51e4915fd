"""Reading a POP3 mailbox: UIDL tracking, so a message left on the server is never taken twice;
DELE only after the message is committed (and only when --after delete).

POP3 has no flags: `--after seen` leaves the message on the server, remembered by its UIDL; a
backlog of `unseen` means everything there (POP3 cannot tell what was read). The blocking stdlib
client runs in a thread.
"""

from __future__ import annotations

import asyncio
import poplib
import re
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from mailgate.backoff import Backoff
from mailgate.context import Context
from mailgate.errors import NeedsReauthorization, Transient
from mailgate.inbound import pipeline
from mailgate.mail import sasl
from mailgate.mail.endpoints import password_of
from mailgate.mail.mailboxes import destination_of
from mailgate.mail.probe import Session, StepFailed, tls_context_for
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime import leases
from mailgate.runtime.imap_mailbox import PollReport, load, set_status
from mailgate.runtime.pause import wait_or_stop
from mailgate.store.models import Mailbox, Receipt

log = structlog.get_logger(__name__)


async def _open(ctx: Context, keeper: TokenKeeper, mailbox: Mailbox) -> Session:
    """Connected and authenticated; a refused token is refreshed once and tried once more."""
    for attempt in (1, 2):
        session = Session(mailbox, tls_context_for(mailbox))
        try:
            for step in (session.connect, session.tls, session.greeting):
                await asyncio.to_thread(step)
            if mailbox.credential_id is None:
                await asyncio.to_thread(
                    session.authenticate_password, mailbox.username, password_of(ctx, mailbox)
                )
                return session
            token = await keeper.access_token(mailbox.credential_id)
            mechanism = sasl.choose_mechanism(session.offered_mechanisms(), mailbox.sasl_mechanism)
            await asyncio.to_thread(
                session.authenticate_oauth, mechanism, mailbox.username, token.value
            )
            return session
        except StepFailed as failed:
            await asyncio.to_thread(session.close)
            temporary = re.search(r"SYS/TEMP|UNAVAILABLE", failed.detail)
            if (
                failed.kind != "refused"
                or attempt == 2
                or mailbox.credential_id is None
                or temporary
            ):
                raise
            keeper.invalidate(mailbox.credential_id)
            await keeper.refresh(mailbox.credential_id)
        except BaseException:
            await asyncio.to_thread(session.close)
            raise
    raise AssertionError("unreachable")


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
    ctx: Context, session: Session, mailbox: Mailbox, *, dry_run: bool = False
) -> PollReport:
    report = PollReport()
    pop = session.pop
    assert pop is not None
    listing = await asyncio.to_thread(pop.uidl)
    numbers: dict[str, int] = {}
    for line in listing[1]:
        position, _, uidl = line.decode("ascii", "replace").partition(" ")
        numbers[uidl.strip()] = int(position)
    sizes: dict[int, int] = {}
    for line in (await asyncio.to_thread(pop.list))[1]:
        position, _, size = line.decode("ascii", "replace").partition(" ")
        sizes[int(position)] = int(size.split()[0])
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
        if action == "delete" and receipt.status != "quarantined":
            deletes.append(receipt.id)
            await asyncio.to_thread(pop.dele, numbers[uidl])
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
                status="skipped",
            )
            continue
        listed = sizes.get(number, 0)
        raw = None
        if listed <= mailbox.max_message_bytes:
            # None: longer than the server listed it, and over the limit
            raw = await asyncio.to_thread(_retrieve, pop, number, mailbox.max_message_bytes)
        if raw is None:
            reason = f"{listed} bytes, over the limit of {mailbox.max_message_bytes} (--max-message-bytes); left on the server"
            await pipeline.quarantine(ctx, mailbox.id, ref, listed, reason)
            report.quarantined.append(number)
            continue
        taken = await pipeline.take(ctx, mailbox.id, ref, raw, destination=destination_of(mailbox))
        (report.taken if taken.new else report.skipped).append(number)
        if taken.status == "quarantined":
            report.quarantined.append(number)  # kept on the server for a retry
            await pipeline.post_actions_done(ctx, [taken.receipt_id])
        elif (taken.post_action or mailbox.after) == "delete":
            await asyncio.to_thread(pop.dele, number)
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
    await asyncio.to_thread(pop.quit)
    session.pop = None
    for receipt_id in deletes:
        await pipeline.post_actions_done(ctx, [receipt_id])
    return report


_CHUNK = 1 << 20


def _retrieve(pop: poplib.POP3, number: int, limit: int) -> bytes | None:
    """Message `number` (RETR), or None when it is longer than `limit` bytes.

    Not `poplib.POP3.retr`: it refuses a line longer than 2,048 bytes (`error_proto('line too
    long')`), and RFC 5322 §2.1.1's 998 is a rule that senders and servers break — one such
    message would fail every poll, and the mail after it would never be taken. Here a line may
    be of any length; the message as a whole is bounded by `limit`."""
    pop._putcmd(f"RETR {number}")  # type: ignore[attr-defined]
    pop._getresp()  # type: ignore[attr-defined]  # "-ERR …" raises error_proto
    parts: list[bytes] = []
    held = 0
    line_start = True
    while True:
        chunk = pop.file.readline(_CHUNK)  # a long line comes in pieces
        if not chunk:
            raise poplib.error_proto("-ERR EOF inside a message")
        if line_start:
            if chunk in (b".\r\n", b".\n"):  # RFC 1939 §3: the end of a multi-line response
                break
            if chunk.startswith(b".."):  # byte-stuffed
                chunk = chunk[1:]
        line_start = chunk.endswith(b"\n")
        held += len(chunk)
        if held <= limit:
            parts.append(chunk)
    return b"".join(parts) if held <= limit else None


async def poll_once(
    ctx: Context, name: str, *, keeper: TokenKeeper | None = None, dry_run: bool = False
) -> PollReport:
    keeper = keeper or TokenKeeper(ctx)
    mailbox = await load(ctx, name)
    try:
        async with leases.holding(ctx, mailbox.id, keeper.owner, wait=leases.LEASE_SECONDS + 2):
            mailbox = await load(ctx, name)
            session = await _open(ctx, keeper, mailbox)
            try:
                report = await process(ctx, session, mailbox, dry_run=dry_run)
            finally:
                await asyncio.to_thread(session.close)
    except NeedsReauthorization as exc:
        await set_status(ctx, mailbox.id, "needs-reauthorization", str(exc))
        raise
    except (StepFailed, sasl.NoOAuthMechanism, OSError, EOFError, poplib.error_proto) as exc:
        status = (
            "auth-failed" if isinstance(exc, StepFailed) and exc.kind == "refused" else "failing"
        )
        message = str(getattr(exc, "detail", exc))
        await set_status(ctx, mailbox.id, status, message)
        raise Transient(f"Mailbox {name!r}: {message}") from None
    if not dry_run:
        await set_status(ctx, mailbox.id, "polling")
    return report


async def run_pop3_mailbox(
    ctx: Context, name: str, stop: asyncio.Event, *, keeper: TokenKeeper | None = None
) -> None:
    """Poll a POP3 mailbox every poll interval until `stop` (POP3 has no push)."""
    keeper = keeper or TokenKeeper(ctx)
    backoff = Backoff()
    while not stop.is_set():
        mailbox = await load(ctx, name)
        wait = float(mailbox.poll_seconds)
        try:
            session = await _open(ctx, keeper, mailbox)
            try:
                await process(ctx, session, mailbox)
            finally:
                await asyncio.to_thread(session.close)
            await set_status(ctx, mailbox.id, "polling")
            backoff.reset()
        except NeedsReauthorization as exc:
            await set_status(ctx, mailbox.id, "needs-reauthorization", str(exc))
        except StepFailed as exc:
            status = "auth-failed" if exc.kind == "refused" else "failing"
            await set_status(ctx, mailbox.id, status, exc.detail)
            wait = backoff.next() if status == "failing" else max(wait, 900.0)
        except Exception as exc:  # the loop survives anything: log, say it, back off, retry
            if not isinstance(exc, Transient | sasl.NoOAuthMechanism | OSError | EOFError):
                log.exception("mailbox loop error", mailbox=name)
            wait = backoff.next()
            # Logged first: should the database be what fails, the status cannot be written.
            log.warning("mailbox failed", mailbox=name, error=str(exc), retry_in=wait)
            await set_status(ctx, mailbox.id, "failing", f"{exc}; retrying in {wait:.0f} s")
        await wait_or_stop(ctx, stop, wait)
