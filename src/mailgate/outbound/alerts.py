"""Alerts: the admin (MAILGATE_ADMIN_EMAIL) gets one message when something needs attention, and
one when it is over — never more than one per incident an hour.

Incidents, each with its key:
- `credential:ID` — a credential needs re-authorization, or keeps failing to refresh;
- `mailbox:ID` — a mailbox has been failing for 15 minutes;
- `secret:ID` — an integration's client secret expires within 14 days;
- `smtp:ID` — an SMTP server refuses or cannot be reached;
- `outbox` — notifications are being dead-lettered.
Alerts go through the outbox like any message (via the first SMTP server): an alert about a dead
SMTP server waits there and goes out, with its recovery, once the server is back.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta
from email.message import EmailMessage

import sqlalchemy as sa
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import (
    Alert,
    Credential,
    Integration,
    Mailbox,
    OutboxMessage,
    SmtpServer,
)
from mailgate.store.vocabulary import (
    CredentialStatus,
    IncidentKind,
    MailboxStatus,
    OutboxKind,
    OutboxStatus,
    SmtpStatus,
)
from mailgate.tracker import notify
from mailgate.tracker.fingerprint import DEFAULT_FINGERPRINT_HEADER, FINGERPRINT
from mailgate.unit import Unit

log = structlog.get_logger(__name__)

MAILBOX_GRACE = timedelta(minutes=15)
SECRET_WARNING = timedelta(days=14)
QUIET = timedelta(hours=1)  # at most one message per incident in this time
REFRESH_FAILURES = 3
# A mailbox's or an SMTP server's (the same words for both).
_FAILING = (MailboxStatus.FAILING, MailboxStatus.AUTH_FAILED, MailboxStatus.NEEDS_REAUTHORIZATION)
_SIGN_IN_FAILED = (SmtpStatus.AUTH_FAILED, SmtpStatus.NEEDS_REAUTHORIZATION)


def _key(kind: IncidentKind, thing_id: int | None = None) -> str:
    """An incident's key: `credential:3`, `outbox`."""
    return kind if thing_id is None else f"{kind}:{thing_id}"


def incidents(session: Session, now: datetime) -> dict[str, str]:
    """What needs attention now: key → one line saying what and what to do."""
    found: dict[str, str] = {}
    credentials = {c.id: c for c in session.scalars(select(Credential))}

    def stale(status: str, credential_id: int | None, checked: datetime | None) -> bool:
        """A sign-in failure from before its credential was authorized again: the next
        attempt will tell; until then it is not an incident of its own."""
        credential = credentials.get(credential_id or 0)
        return (
            status in _SIGN_IN_FAILED
            and credential is not None
            and credential.status == CredentialStatus.ACTIVE
            and (checked is None or credential.updated_at >= checked)
        )

    for credential in credentials.values():
        failing = credential.status == CredentialStatus.REFRESH_FAILING
        if credential.status == CredentialStatus.NEEDS_REAUTHORIZATION or (
            failing and credential.failure_count >= REFRESH_FAILURES
        ):
            found[_key(IncidentKind.CREDENTIAL, credential.id)] = (
                f"credential {credential.id} ({credential.account}) is {credential.status}: "
                f"{credential.last_error or ''}".rstrip(": ")
            )
    # A mailbox or SMTP server failing because its credential does is that one incident.
    for mailbox in session.scalars(select(Mailbox)):
        if _key(IncidentKind.CREDENTIAL, mailbox.credential_id) in found or stale(
            mailbox.status, mailbox.credential_id, mailbox.last_check_at
        ):
            continue
        if mailbox.status in _FAILING:
            found[_key(IncidentKind.MAILBOX, mailbox.id)] = (
                f"mailbox {mailbox.name} is {mailbox.status}: {mailbox.last_error or ''}".rstrip(
                    ": "
                )
            )
    for integration in session.scalars(select(Integration)):
        expires = integration.client_secret_expires
        if expires is not None and expires <= (now + SECRET_WARNING).date():
            found[_key(IncidentKind.SECRET, integration.id)] = (
                f"the client secret of integration {integration.name} expires on {expires}: "
                f"create a new one at the provider, then `mailgate integration set "
                f"{integration.name} --client-secret-file FILE`"
            )
    for server in session.scalars(select(SmtpServer)):
        if _key(IncidentKind.CREDENTIAL, server.credential_id) in found or stale(
            server.status, server.credential_id, server.last_check_at
        ):
            continue
        if server.status in _FAILING:
            found[_key(IncidentKind.SMTP, server.id)] = (
                f"SMTP server {server.name} is {server.status}: {server.last_error or ''}".rstrip(
                    ": "
                )
            )
    last_dead = session.scalar(
        select(func.max(OutboxMessage.id)).where(
            OutboxMessage.status == OutboxStatus.DEAD, OutboxMessage.kind != OutboxKind.ALERT
        )
    )
    last_sent = session.scalar(
        select(func.max(OutboxMessage.id)).where(OutboxMessage.status == OutboxStatus.SENT)
    )
    if last_dead is not None and (last_sent is None or last_dead > last_sent):
        found[_key(IncidentKind.OUTBOX)] = (
            "notifications are being dead-lettered: `mailgate outbox list` shows why"
        )
    return found


def _grace(incident: str) -> timedelta:
    return MAILBOX_GRACE if incident.startswith(f"{IncidentKind.MAILBOX}:") else timedelta(0)


def check(unit: Unit, admin: str | None) -> list[str]:
    """Open, announce and close incidents; returns the subjects of the alerts queued.

    An incident is announced once (a mailbox after its grace period) and its end once. One that
    comes back within the hour after a message about it is announced only when that hour is
    over and it is still there — a flapping incident gives at most one message an hour.

    Workers run this at once, each in its own transaction: at most one open alert per key (a
    unique index), and each announcement is a conditional UPDATE, so only the transaction
    that made the change queues its message. Keys are taken in order, so two checks lock the
    same rows in the same order."""
    session, now = unit.session, unit.now()
    active = incidents(session, now)
    queued: list[str] = []
    for key in sorted(active):
        row = _open(session, key, active[key], now)
        if row is None:
            continue
        quiet = row.last_sent_at is None or now - row.last_sent_at >= QUIET
        if row.announced or not quiet or now - row.opened_at < _grace(key):
            continue
        if _changed(session, row.id, Alert.announced.is_(False), announced=True, last_sent_at=now):
            subject = f"PROBLEM: {row.summary}"
            if _send(unit, admin, subject, row.summary):
                queued.append(subject)
    still_open = session.scalars(
        select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.key)
    ).all()
    for row in still_open:
        if row.key in active:
            continue
        announced = session.scalar(
            update(Alert)
            .where(Alert.id == row.id, Alert.resolved_at.is_(None))
            .values(resolved_at=now)
            .returning(Alert.announced)
        )
        if announced:  # None: another worker closed it first
            _changed(session, row.id, Alert.announced.is_(True), announced=False, last_sent_at=now)
            subject = f"RECOVERED: {row.summary}"
            if _send(unit, admin, subject, f"Back to normal: {row.summary}"):
                queued.append(subject)
    session.flush()
    return queued


def _open(session: Session, key: str, summary: str, now: datetime) -> Alert | None:
    """The incident's open alert: the one there, the last one reopened when a message about it
    went out within the hour (the same incident again), or a new one. Another worker may have
    opened it meanwhile: then its row."""
    row = _open_row(session, key)
    if row is None:
        last = session.scalars(
            select(Alert).where(Alert.key == key).order_by(Alert.id.desc())
        ).first()
        if last is not None and last.last_sent_at is not None and now - last.last_sent_at < QUIET:
            reopened = {"resolved_at": None, "opened_at": now}
            try:
                with session.begin_nested():  # another worker's open row wins
                    _changed(session, last.id, Alert.resolved_at.is_not(None), **reopened)
            except IntegrityError:
                pass
        else:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(
                insert(Alert)
                .values(key=key, summary=summary, opened_at=now, announced=False)
                .on_conflict_do_nothing(
                    index_elements=[Alert.key], index_where=Alert.resolved_at.is_(None)
                )
            )
        row = _open_row(session, key)
    if row is not None and row.summary != summary:
        row.summary = summary
    return row


def _open_row(session: Session, key: str) -> Alert | None:
    return session.scalars(
        select(Alert)
        .where(Alert.key == key, Alert.resolved_at.is_(None))
        .execution_options(populate_existing=True)
    ).first()


def _changed(
    session: Session, alert_id: int, unless: sa.ColumnElement[bool], **values: object
) -> bool:
    """Set `values` on the alert if `unless` still holds: True if this transaction did."""
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert_id, unless)
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _send(unit: Unit, admin: str | None, subject: str, body: str) -> bool:
    if admin is None:
        log.warning("alert (no MAILGATE_ADMIN_EMAIL to send it to)", subject=subject)
        return False
    server = unit.session.scalars(select(SmtpServer).order_by(SmtpServer.id)).first()
    if server is None:
        log.warning("alert (no SMTP server to send it with)", subject=subject)
        return False
    message = EmailMessage()
    message["From"] = email.utils.formataddr(("mailgate", server.from_address))
    message["To"] = admin
    message["Subject"] = "[mailgate] " + " ".join(subject.split())[:900]
    domain = server.from_address.rsplit("@", 1)[-1]
    message["Message-ID"] = email.utils.make_msgid("mailgate.alert", domain=domain)
    message["Date"] = email.utils.formatdate(unit.now().timestamp())
    message["Auto-Submitted"] = "auto-generated"
    message[DEFAULT_FINGERPRINT_HEADER] = FINGERPRINT
    message.set_content(notify.render(unit.templates, "alert.txt", {"body": body}))
    message.add_alternative(
        notify.render(unit.templates, "alert.html", {"body": body}), subtype="html"
    )
    notify.queue(unit, server.id, OutboxKind.ALERT, None, [admin], message)
    log.warning("alert", subject=subject)
    return True


async def run_check(ctx: Context) -> list[str]:
    return await Unit.run(ctx, check, ctx.settings.admin_email)
