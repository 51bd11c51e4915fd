"""The outbox dispatcher: sends what the tracker queued, with retries, never twice on purpose.

A message is claimed with a lease (several workers share the outbox without sending a message
twice), sent, and marked sent the moment the server's reply to DATA arrives — so only a crash
inside one SMTP transaction can repeat a message. Two leases, so that a worker killed after
claiming holds nothing for long while one that is alive never has a message taken mid-send:
- a claim is short (`CLAIM_LEASE`, a minute) and covers a small batch (`BATCH`): a killed
  worker's messages go to another worker a minute later, not after the longest transaction;
- just before its SMTP transaction, a message's lease is renewed for the longest that
  transaction may take (`SEND_LEASE`; the transaction is cut off at `SEND_LIMIT`) — only if this
  worker still holds it. A message whose claim ran out and that another worker took is skipped,
  and a failure of this worker's connection does not touch it.
Failures:
- the server refused the sign-in, the token needs re-authorization, TLS is broken: the message
  waits (its error says what to fix) and goes out once it is fixed, however long that takes;
- 4xx or a network failure: retried with exponential backoff for up to 5 days;
- 5xx in the mail transaction: tried 3 times, then dead-lettered (`outbox list` shows why);
- a message no attempt can send through its server (a non-ASCII address, and the server does
  not offer SMTPUTF8): dead-lettered at once, the reason saying what to do.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

import aiosmtplib
import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mailgate.backoff import delay
from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, NotFound
from mailgate.mail import smtp
from mailgate.mail.diagnose import diagnose_smtp
from mailgate.mail.endpoints import password_of
from mailgate.oauth.access import authenticate_with_refresh
from mailgate.oauth.tokens import AccessToken, TokenKeeper
from mailgate.store import audit
from mailgate.store.models import Issue, OutboxMessage, Project, SmtpServer
from mailgate.store.vocabulary import OutboxStatus, SmtpStatus

log = structlog.get_logger(__name__)

# A claimed message waiting its turn: what a killed worker's claims hold up.
CLAIM_LEASE = timedelta(minutes=1)
# Small enough that a batch usually goes out within its claim; what is still waiting when the
# claim runs out may go to another worker (never sent twice: the renewal checks the holder).
BATCH = 20
# One transaction as a whole: the reply to DATA alone may take 10 minutes (RFC 5321
# §4.5.3.2.6, `smtp.DATA_TIMEOUT`), and aiosmtplib's timeout counts per command, so
# MAIL, RCPT and DATA together are cut off here.
SEND_LIMIT = smtp.DATA_TIMEOUT + 60.0
# Renewed for each message just before it is sent: its transaction, and recording the reply.
SEND_LEASE = timedelta(seconds=SEND_LIMIT) + timedelta(minutes=2)
DEAD_AFTER_REFUSALS = 3
SENT_WRITE_TRIES = 5
GIVE_UP_AFTER = timedelta(days=5)
_rng = random.Random()


@dataclass
class FlushReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, int]:
        return {
            "sent": len(self.sent),
            "retrying": len(self.retrying),
            "waiting": len(self.waiting),
            "dead": len(self.dead),
        }


def owner_id() -> str:
    """Unique per flush: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def _claim(ctx: Context, owner: str) -> list[OutboxMessage]:
    """Due messages, leased to `owner` (a conditional UPDATE each: one worker wins)."""
    now = ctx.clock()
    free = or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now)
    async with ctx.db.session() as session, session.begin():
        candidates = (
            await session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.next_attempt_at <= now,
                    free,
                )
                .order_by(OutboxMessage.id)
                .limit(BATCH)
            )
        ).all()
        claimed = []
        for message_id in candidates:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, free)
                .values(lease_owner=owner, lease_until=now + CLAIM_LEASE)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(message_id)
        if not claimed:
            return []
        return list(
            (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.id.in_(claimed))
                    .order_by(OutboxMessage.id)
                )
            ).all()
        )


async def flush(ctx: Context, keeper: TokenKeeper | None = None) -> FlushReport:
    """Send every message that is due; returns what became of them."""
    keeper = keeper or TokenKeeper(ctx)
    report = FlushReport()
    owner = owner_id()
    while messages := await _claim(ctx, owner):
        by_server: dict[int | None, list[OutboxMessage]] = defaultdict(list)
        for message in messages:
            by_server[message.smtp_server_id].append(message)
        for server_id, batch in by_server.items():
            await _send_batch(ctx, keeper, server_id, batch, report, owner)
        if len(messages) < BATCH:
            break
    return report


async def sign_in(
    ctx: Context, keeper: TokenKeeper, server: SmtpServer, client: aiosmtplib.SMTP
) -> str:
    """Sign in to the server with its credential's access token (refreshed once and tried once
    more if the server refuses it) or its password; returns the mechanism used, or "password"."""
    if server.credential_id is None:
        return await smtp.login(client, server, password_of(ctx, server))
    mechanism = smtp.oauth_mechanism(client, server)

    async def attempt(token: AccessToken) -> str:
        return await smtp.authenticate(client, server, mechanism, token.value)

    try:
        return await authenticate_with_refresh(keeper, server.credential_id, attempt)
    except smtp.SmtpFailure:
        raise
    except MailgateError as exc:  # the token keeper's: re-authorize, the provider is down, ...
        raise smtp.SmtpFailure("token", str(exc)) from None


async def _send_batch(
    ctx: Context,
    keeper: TokenKeeper,
    server_id: int | None,
    batch: list[OutboxMessage],
    report: FlushReport,
    owner: str,
) -> None:
    async with ctx.db.session() as session:
        server = await session.get(SmtpServer, server_id) if server_id is not None else None
    if server is None:
        failure = smtp.SmtpFailure(
            "connect", "its SMTP server was deleted: add one (`mailgate smtp add`)", kind="config"
        )
        for message in batch:
            await _failed(ctx, message, failure, "No SMTP server to send with.", report, owner)
        return
    remaining = list(batch)
    try:
        async with smtp.connected(server) as client:
            await sign_in(ctx, keeper, server, client)
            while remaining:
                message = remaining[0]
                if not await _still_ours(ctx, message, owner):
                    remaining.pop(0)  # its lease ran out and another worker took it
                    continue
                try:
                    reply, refused = await _transact(client, server, message)
                except smtp.SmtpFailure as failure:
                    remaining.pop(0)
                    explanation = diagnose_smtp(failure, server)
                    await _failed(ctx, message, failure, explanation, report, owner)
                    if failure.kind == "connection" or failure.code == 421:
                        raise  # the connection is gone: the rest waits for the next attempt
                    continue
                remaining.pop(0)
                await _sent(ctx, message, reply, refused, report)
        await _server_status(ctx, server.id, SmtpStatus.OK, None)
    except smtp.SmtpFailure as failure:
        explanation = diagnose_smtp(failure, server)
        for message in remaining:
            await _failed(ctx, message, failure, explanation, report, owner)
        signing_in = failure.step in ("authenticate", "token")
        status = SmtpStatus.AUTH_FAILED if signing_in else SmtpStatus.FAILING
        await _server_status(ctx, server.id, status, explanation)


async def _transact(
    client: aiosmtplib.SMTP, server: SmtpServer, message: OutboxMessage
) -> tuple[str, dict[str, str]]:
    """One SMTP transaction, cut off at `SEND_LIMIT` so it ends well inside its lease."""
    try:
        async with asyncio.timeout(SEND_LIMIT):
            return await smtp.transact(client, server.from_address, message.recipients, message.raw)
    except TimeoutError:
        # The connection is in an unknown state: dropped, and the message retried later.
        text = f"no reply within {SEND_LIMIT:.0f} seconds; the connection was dropped"
        raise smtp.SmtpFailure("send", text, kind="connection") from None


async def _still_ours(ctx: Context, message: OutboxMessage, owner: str) -> bool:
    """Renew this message's lease for its transaction just before sending it; False when
    another worker has it (its claim ran out and another worker took it)."""
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.lease_owner == owner,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .values(lease_until=ctx.clock() + SEND_LEASE)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def _sent(
    ctx: Context,
    message: OutboxMessage,
    reply: str,
    refused: dict[str, str],
    report: FlushReport,
) -> None:
    note = "; ".join(f"{r}: {why}" for r, why in refused.items()) or None
    # The server has the message: recording that must not fail, or it would be sent again.
    for attempt in range(1, SENT_WRITE_TRIES + 1):
        try:
            await _record_sent(ctx, message, reply, note)
            break
        except Exception:
            if attempt == SENT_WRITE_TRIES:
                raise
            log.warning("recording a sent notification failed; trying again", outbox=message.id)
            await asyncio.sleep(0.5 * attempt)
    report.sent.append(message.id)
    log.info(
        "notification sent", outbox=message.id, message_id=message.message_id, kind=message.kind
    )


async def _record_sent(ctx: Context, message: OutboxMessage, reply: str, note: str | None) -> None:
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(
                status=OutboxStatus.SENT,
                accepted=reply,
                accepted_at=ctx.clock(),
                attempts=OutboxMessage.attempts + 1,
                last_error=f"refused recipients: {note}" if note else None,
                lease_owner=None,
                lease_until=None,
            )
        )


async def _failed(
    ctx: Context,
    message: OutboxMessage,
    failure: smtp.SmtpFailure,
    explanation: str,
    report: FlushReport,
    owner: str,
) -> None:
    """Record a failed attempt and give the lease back — only while `owner` holds the message:
    one whose claim ran out may be in another worker's transaction right now."""
    now = ctx.clock()
    attempts = message.attempts + 1
    status = OutboxStatus.PENDING
    if failure.waits_for_admin:
        # Tried again now and then; authorizing its credential again makes it due at once
        # (`oauth/credentials.py`), so it need not wait out this delay.
        wait = delay(attempts, 60.0, 900.0, _rng)
    elif failure.permanent:
        wait = delay(attempts, 60.0, 3600.0, _rng)
        # Undeliverable (a non-ASCII address, the server without SMTPUTF8): no retry can help.
        if attempts >= DEAD_AFTER_REFUSALS or failure.undeliverable:
            status = OutboxStatus.DEAD
    else:
        wait = delay(attempts, 30.0, 3600.0, _rng)
        if now - message.created_at > GIVE_UP_AFTER:
            status = OutboxStatus.DEAD
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.lease_owner == owner,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=now + timedelta(seconds=wait),
                last_error=f"{failure} — {explanation}",
                lease_owner=None,
                lease_until=None,
            )
        )
    if not result.rowcount:  # type: ignore[attr-defined]
        return  # another worker has it now: what becomes of it is that worker's to say
    if status == OutboxStatus.DEAD:
        report.dead.append(message.id)
    elif failure.waits_for_admin:
        report.waiting.append(message.id)
    else:
        report.retrying.append(message.id)
    log.warning(
        "notification not sent",
        outbox=message.id,
        message_id=message.message_id,
        status=status,
        error=str(failure),
    )


async def _server_status(ctx: Context, server_id: int, status: str, error: str | None) -> None:
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(SmtpServer)
            .where(SmtpServer.id == server_id)
            .values(status=status, last_error=error, last_check_at=ctx.clock())
        )


async def list_outbox(ctx: Context) -> list[dict[str, Any]]:
    """Every message, oldest first (`outbox list`)."""
    return (await outbox_page(ctx, newest_first=False)).messages


@dataclass(frozen=True)
class OutboxPage:
    """Messages of the outbox, and the cursor of the next page (None on the last)."""

    messages: list[dict[str, Any]]
    next_before: int | None


async def outbox_page(
    ctx: Context,
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int | None = None,
    newest_first: bool = True,
) -> OutboxPage:
    """The outbox a page at a time for the Outbox page and the API: only `status` if given,
    newest first, the messages older than the one `before` names (its id), at most `limit`."""
    if status is not None and status not in tuple(OutboxStatus):
        raise BadInput(f"Unknown outbox status {status!r}: use pending, sent or dead.")

    def read(session: Session) -> OutboxPage:
        query = (
            select(OutboxMessage, Issue.number, Project.key, SmtpServer.name)
            .outerjoin(Issue, OutboxMessage.issue_id == Issue.id)
            .outerjoin(Project, Issue.project_id == Project.id)
            .outerjoin(SmtpServer, OutboxMessage.smtp_server_id == SmtpServer.id)
            .order_by(OutboxMessage.id.desc() if newest_first else OutboxMessage.id)
        )
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        if before is not None:
            query = query.where(OutboxMessage.id < before)
        if limit is not None:
            query = query.limit(limit + 1)
        rows = session.execute(query).all()
        shown = rows[:limit] if limit is not None else rows
        more = limit is not None and len(rows) > limit and bool(shown)
        views = [_view(message, number, key, name) for message, number, key, name in shown]
        return OutboxPage(views, views[-1]["id"] if more else None)

    return await ctx.db.read(read)


async def outbox_message(ctx: Context, message_id: int) -> dict[str, Any]:
    """One message of the outbox, as `outbox_page` shows it."""
    page = await outbox_page(ctx, before=message_id + 1, limit=1)
    if not page.messages or page.messages[0]["id"] != message_id:
        raise NotFound(f"No outbox message {message_id}: `mailgate outbox list` shows them.")
    return page.messages[0]


_HEADERS = BytesHeaderParser(policy=default_policy)


def _view(
    message: OutboxMessage, number: int | None, key: str | None, smtp_name: str | None
) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": message.kind,
        "issue": f"{key}-{number}" if key else None,
        "smtp": smtp_name,
        "to": list(message.recipients),
        "subject": str(_HEADERS.parsebytes(message.raw).get("Subject", "")),
        "message_id": message.message_id,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at.isoformat()
        if message.status == OutboxStatus.PENDING
        else None,
        "last_error": message.last_error,
        "created_at": message.created_at.isoformat(),
        "accepted_at": message.accepted_at.isoformat() if message.accepted_at else None,
    }


async def retry(ctx: Context, message_id: int | None) -> int:
    """Queue dead messages again (one, or all with None) once their cause is fixed; a pending
    message named by its id is tried at once instead of at its next attempt. Returns how many
    were queued; recorded in the audit log."""
    async with ctx.db.session() as session, session.begin():
        query = update(OutboxMessage).where(OutboxMessage.status == OutboxStatus.DEAD)
        if message_id is not None:
            exists = await session.get(OutboxMessage, message_id)
            if exists is None or exists.status == OutboxStatus.SENT:
                raise NotFound(
                    f"No dead message {message_id}, nor a pending one: `mailgate outbox list` "
                    "shows them."
                )
            if exists.status == OutboxStatus.PENDING:
                exists.next_attempt_at = ctx.clock()
                subject, detail = f"message {message_id}", "pending: tried now"
                audit.record(session.sync_session, ctx.clock(), "outbox.retry", subject, detail)
                return 1
            query = query.where(OutboxMessage.id == message_id)
        result = await session.execute(
            query.values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=ctx.clock())
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        subject = f"message {message_id}" if message_id is not None else "every dead message"
        detail = f"{count} dead message(s) queued again"
        audit.record(session.sync_session, ctx.clock(), "outbox.retry", subject, detail)
        return count
