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

import structlog
from sqlalchemy import func, select
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
    over and it is still there — a flapping incident gives at most one message an hour."""
    session, now = unit.session, unit.now()
    active = incidents(session, now)
    open_rows = {
        a.key: a for a in session.scalars(select(Alert).where(Alert.resolved_at.is_(None)))
    }
    queued: list[str] = []
    for key, summary in active.items():
        row = open_rows.get(key)
        if row is None:
            row = session.scalars(
                select(Alert).where(Alert.key == key).order_by(Alert.id.desc())
            ).first()
            if row is not None and row.last_sent_at is not None and now - row.last_sent_at < QUIET:
                row.resolved_at = None  # back within the hour: the same incident again
                row.opened_at = now
            else:
                row = Alert(key=key, summary=summary, opened_at=now, announced=False)
                session.add(row)
        row.summary = summary
        quiet = row.last_sent_at is None or now - row.last_sent_at >= QUIET
        if not row.announced and quiet and now - row.opened_at >= _grace(key):
            subject = f"PROBLEM: {summary}"
            if _send(unit, admin, subject, summary):
                queued.append(subject)
            row.announced, row.last_sent_at = True, now
    for key, row in open_rows.items():
        if key in active:
            continue
        row.resolved_at = now
        if row.announced:
            subject = f"RECOVERED: {row.summary}"
            if _send(unit, admin, subject, f"Back to normal: {row.summary}"):
                queued.append(subject)
            row.announced, row.last_sent_at = False, now
    session.flush()
    return queued


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
