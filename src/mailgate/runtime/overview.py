"""The dashboard's data: what needs the admin first, then each mailbox's live state.

`needs_attention` starts from the incidents the admin is mailed about (`outbound/alerts.py`
decides what is one, so the dashboard and the alerts never disagree) and adds what the
dashboard shows besides: a client the provider refuses, dead letters to retry, quarantined mail.
Each item says what is wrong in one sentence (the provider's or the server's refusal as the
diagnosis catalog reads it, which the loops store as the last error), the one action that fixes
it, and the page where that action is.

`mailbox_states` reads what the loops record: the status they write (`idle` once an IDLE
connection is up, `polling`, the failing ones) and the lease the running process renews every few
seconds (`runtime/leases.py`). A status is only live while its lease is: a stopped or dead
process leaves the last status behind, and no lease.

The web pages and the REST API call these, and render `as_json()` or the fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.context import Context
from mailgate.mail.endpoints import iso
from mailgate.oauth.integrations import SECRET_EXPIRY_WARNING_DAYS, secret_expiry_days
from mailgate.outbound.alerts import incidents
from mailgate.store.dbtime import database_now
from mailgate.store.models import (
    Alert,
    Credential,
    CredentialEvent,
    Integration,
    Issue,
    Mailbox,
    OutboxMessage,
    Project,
    Receipt,
    SmtpServer,
)
from mailgate.store.vocabulary import (
    CredentialEventKind,
    CredentialStatus,
    IncidentKind,
    MailboxStatus,
    OutboxStatus,
    ReceiptStatus,
)


class Severity(StrEnum):
    ERROR = "error"  # something stopped working
    WARNING = "warning"  # it works, but will not for long, or something waits for a decision


class AttentionKind(StrEnum):
    """What an item of the dashboard's first list is about."""

    REAUTHORIZE = "reauthorize"  # the provider refused the grant
    REFRESH_FAILING = "refresh-failing"  # refreshes keep failing
    CLIENT_REJECTED = "client-rejected"  # the provider refused the client (wrong or expired)
    SECRET_EXPIRED = "secret-expired"
    SECRET_EXPIRING = "secret-expiring"  # within SECRET_EXPIRY_WARNING_DAYS
    MAILBOX_FAILING = "mailbox-failing"
    SMTP_REFUSING = "smtp-refusing"
    DEAD_LETTERS = "dead-letters"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class Attention:
    """One thing that needs the admin: what, since when, why, and the one action that fixes it."""

    kind: AttentionKind
    severity: Severity
    subject: str  # "credential 3 (support@contoso.com)", "mailbox support", ...
    since: datetime | None
    cause: str
    action: str
    href: str  # the page where the action is
    key: str  # stable across refreshes: "credential:3", "mailbox:2", "outbox", "quarantine"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "since": iso(self.since),
            "cause": self.cause,
            "action": self.action,
            "href": self.href,
            "key": self.key,
        }


_NEVER = datetime.max.replace(tzinfo=UTC)


def ordered(items: list[Attention]) -> list[Attention]:
    """Errors first, then the oldest first (an item with no date after the dated ones)."""
    return sorted(
        items,
        key=lambda a: (a.severity != Severity.ERROR, a.since or _NEVER, a.subject, a.kind),
    )


def _page(kind: str, name: str | int) -> str:
    return f"/{kind}/{quote(str(name), safe='')}"


def _since_day(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def needs_attention(ctx: Context) -> list[Attention]:
    """What needs the admin now, errors first and then the oldest first."""
    now = ctx.clock()
    async with ctx.db.session() as session:
        found = await session.run_sync(lambda sync: incidents(sync, now))
        opened = {
            alert.key: alert.opened_at
            for alert in await session.scalars(select(Alert).where(Alert.resolved_at.is_(None)))
        }
        items = [
            *await _credentials(session, found, opened),
            *await _integrations(session, found, now),
            *await _servers(session, found, opened),
            *await _dead_letters(session, found),
            *await _quarantine(session),
        ]
    return ordered(items)


def _ids(found: dict[str, str], kind: IncidentKind) -> set[int]:
    """The ids of the open incidents of one kind (their keys are `kind:ID`)."""
    prefix = f"{kind}:"
    return {int(key[len(prefix) :]) for key in found if key.startswith(prefix)}


async def _credentials(
    session: AsyncSession, found: dict[str, str], opened: dict[str, datetime]
) -> list[Attention]:
    ids = _ids(found, IncidentKind.CREDENTIAL)
    if not ids:
        return []
    # When the credential entered its status: the event written at that transition.
    began = {
        (credential_id, kind): at
        for credential_id, kind, at in await session.execute(
            select(
                CredentialEvent.credential_id, CredentialEvent.kind, func.max(CredentialEvent.at)
            )
            .where(CredentialEvent.credential_id.in_(ids))
            .group_by(CredentialEvent.credential_id, CredentialEvent.kind)
        )
    }
    items = []
    for credential in await session.scalars(
        select(Credential).where(Credential.id.in_(ids)).order_by(Credential.id)
    ):
        key = f"{IncidentKind.CREDENTIAL}:{credential.id}"
        subject = f"credential {credential.id} ({credential.account})"
        reason = credential.last_error or "the provider refused the grant"
        href = _page("credentials", credential.id)
        if credential.status == CredentialStatus.NEEDS_REAUTHORIZATION:
            event = CredentialEventKind.NEEDS_REAUTHORIZATION
            kind, action = AttentionKind.REAUTHORIZE, "Re-authorize"
            cause = f"The account {credential.account} must sign in again: {reason}"
        else:
            event = CredentialEventKind.REFRESH_FAILING
            kind, action = AttentionKind.REFRESH_FAILING, "Refresh now"
            cause = (
                f"The access token of {credential.account} could not be refreshed "
                f"{credential.failure_count} times in a row: {reason}"
            )
        since = began.get((credential.id, event)) or opened.get(key) or credential.updated_at
        items.append(Attention(kind, Severity.ERROR, subject, since, cause, action, href, key))
    return items


async def _integrations(
    session: AsyncSession, found: dict[str, str], now: datetime
) -> list[Attention]:
    """A client the provider refuses; client secrets expired or expiring soon (the alerts'
    `secret` incidents)."""
    expiring = _ids(found, IncidentKind.SECRET)
    items = []
    for row in await session.scalars(select(Integration).order_by(Integration.name)):
        subject, href = f"integration {row.name}", _page("integrations", row.name)
        action = "Enter a new client secret"
        if row.client_error:
            items.append(
                Attention(
                    AttentionKind.CLIENT_REJECTED,
                    Severity.ERROR,
                    subject,
                    row.updated_at,
                    f"The provider refuses this integration's client: {row.client_error}",
                    action,
                    href,
                    f"client:{row.id}",
                )
            )
        days = secret_expiry_days(row, now)
        if row.id not in expiring or days is None or row.client_secret_expires is None:
            continue
        expires = row.client_secret_expires
        if days < 0:
            kind, severity, since = AttentionKind.SECRET_EXPIRED, Severity.ERROR, expires
            cause = (
                f"The client secret expired on {expires}: until a new one is entered, no "
                "account of this integration can refresh its token."
            )
        else:
            kind, severity = AttentionKind.SECRET_EXPIRING, Severity.WARNING
            since = expires - timedelta(days=SECRET_EXPIRY_WARNING_DAYS)
            cause = (
                f"The client secret expires in {days} day(s), on {expires}: create a new one at "
                "the provider before then."
            )
        key = f"{IncidentKind.SECRET}:{row.id}"
        items.append(
            Attention(kind, severity, subject, _since_day(since), cause, action, href, key)
        )
    return items


# Why a mailbox or an SMTP server fails, by the status its loop wrote.
_WHY: dict[str, str] = {
    MailboxStatus.FAILING: "failing",
    MailboxStatus.AUTH_FAILED: "the server refuses its sign-in",
    MailboxStatus.NEEDS_REAUTHORIZATION: "its credential must be authorized again",
}


async def _servers(
    session: AsyncSession, found: dict[str, str], opened: dict[str, datetime]
) -> list[Attention]:
    """Mailboxes failing and SMTP servers refusing, as the alerts' incidents name them."""
    mailboxes = await session.scalars(
        select(Mailbox)
        .where(Mailbox.id.in_(_ids(found, IncidentKind.MAILBOX)))
        .order_by(Mailbox.name)
    )
    servers = await session.scalars(
        select(SmtpServer)
        .where(SmtpServer.id.in_(_ids(found, IncidentKind.SMTP)))
        .order_by(SmtpServer.name)
    )
    return [_failing(row, opened) for row in [*mailboxes, *servers]]


def _failing(row: Mailbox | SmtpServer, opened: dict[str, datetime]) -> Attention:
    """A failing mailbox or SMTP server: since its incident was opened (the alerts' check runs
    every minute), else since the failure was last seen; why, in the loop's own words (with
    the diagnosis where it made one)."""
    if isinstance(row, Mailbox):
        key = f"{IncidentKind.MAILBOX}:{row.id}"
        kind, subject, href = AttentionKind.MAILBOX_FAILING, f"mailbox {row.name}", "mailboxes"
        lead, action = f"Mail to {row.username} is not read", "Test the connection"
    else:
        key = f"{IncidentKind.SMTP}:{row.id}"
        kind, subject, href = AttentionKind.SMTP_REFUSING, f"SMTP server {row.name}", "smtp"
        lead, action = f"Mail from {row.from_address} is not sent", "Send a test message"
    why = _WHY.get(row.status, row.status)  # the same words for both: see outbound/alerts.py
    cause = f"{lead} ({why}): {row.last_error}" if row.last_error else f"{lead} ({why})."
    since = opened.get(key) or row.last_check_at
    return Attention(
        kind, Severity.ERROR, subject, since, cause, action, _page(href, row.name), key
    )


async def _dead_letters(session: AsyncSession, found: dict[str, str]) -> list[Attention]:
    """Dead outbox messages: an error while they are all that happens (the alerts' `outbox`
    incident: nothing was sent since), a warning once mail goes out again."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status == OutboxStatus.DEAD
            )
        )
    ).one()
    if not count:
        return []
    ongoing = str(IncidentKind.OUTBOX) in found
    cause = (
        f"{count} message(s) could not be sent and were given up on"
        + (", and nothing has been sent since." if ongoing else ".")
        + " The outbox shows each one's last error."
    )
    return [
        Attention(
            AttentionKind.DEAD_LETTERS,
            Severity.ERROR if ongoing else Severity.WARNING,
            "outbox",
            oldest,
            cause,
            "Retry the dead messages",
            "/outbox",
            str(IncidentKind.OUTBOX),
        )
    ]


async def _quarantine(session: AsyncSession) -> list[Attention]:
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(Receipt.received_at)).where(
                Receipt.status == ReceiptStatus.QUARANTINED
            )
        )
    ).one()
    if not count:
        return []
    return [
        Attention(
            AttentionKind.QUARANTINE,
            Severity.WARNING,
            "quarantine",
            oldest,
            f"{count} received message(s) were held back: each says why, and waits to be "
            "retried or deleted.",
            "Review the quarantined messages",
            "/quarantine",
            "quarantine",
        )
    ]


# --- each mailbox, live -------------------------------------------------------------------------


class Activity(StrEnum):
    """What a mailbox is doing, as far as the database knows."""

    IDLE = "idle"  # connected, the server pushes new mail (IMAP IDLE)
    POLLING = "polling"  # connected or connecting at each poll interval
    CONNECTING = "connecting"  # a process holds it, not yet connected
    FAILING = "failing"  # the last attempt failed (the loop retries, or waits for the admin)
    NOT_RUNNING = "not-running"  # no process reads it (`mailgate serve` or `mailgate worker` do)


_FAILED: dict[str, str] = {
    MailboxStatus.FAILING: "failing",
    MailboxStatus.AUTH_FAILED: "sign-in refused",
    MailboxStatus.NEEDS_REAUTHORIZATION: "needs re-authorization",
}


def activity(status: str, running: bool, poll_seconds: int) -> tuple[Activity, str]:
    """The mailbox's activity and its words, from the status its loop wrote and whether a
    process holds its lease."""
    if status in _FAILED:
        return Activity.FAILING, _FAILED[status]
    if not running:
        return Activity.NOT_RUNNING, "not running"
    if status == MailboxStatus.IDLE:
        return Activity.IDLE, "IDLE connected"
    if status == MailboxStatus.POLLING:
        return Activity.POLLING, f"polling every {poll_seconds} s"
    return Activity.CONNECTING, "connecting"


@dataclass(frozen=True)
class LastMessage:
    """The last message a mailbox took."""

    received_at: datetime
    sender: str | None
    message_id: str | None
    outcome: str  # a `ReceiptStatus`: created, commented, quarantined, ignored ...
    issue: str | None  # "HELP-4"
    summary: str | None  # the issue's summary

    def as_json(self) -> dict[str, Any]:
        return {
            "received_at": iso(self.received_at),
            "sender": self.sender,
            "message_id": self.message_id,
            "outcome": self.outcome,
            "issue": self.issue,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Counts:
    """What a mailbox's messages became, from its receipts."""

    taken: int = 0  # every message taken (not those skipped as backlog)
    created: int = 0  # issues created
    commented: int = 0  # comments added
    quarantined: int = 0  # held back now
    ignored: int = 0  # automated mail, duplicates, mail no rule takes

    @classmethod
    def of(cls, by_status: dict[str, int]) -> Counts:
        taken = {s: n for s, n in by_status.items() if s != ReceiptStatus.SKIPPED}
        return cls(
            taken=sum(taken.values()),
            created=taken.get(ReceiptStatus.CREATED, 0),
            commented=taken.get(ReceiptStatus.COMMENTED, 0),
            quarantined=taken.get(ReceiptStatus.QUARANTINED, 0),
            ignored=taken.get(ReceiptStatus.IGNORED, 0) + taken.get(ReceiptStatus.DUPLICATE, 0),
        )

    def as_json(self) -> dict[str, int]:
        return {
            "taken": self.taken,
            "created": self.created,
            "commented": self.commented,
            "quarantined": self.quarantined,
            "ignored": self.ignored,
        }


@dataclass(frozen=True)
class MailboxState:
    """One mailbox on the dashboard."""

    name: str
    protocol: str
    activity: Activity
    words: str  # "IDLE connected", "polling every 60 s", "sign-in refused" ...
    running: bool  # a process holds the mailbox's lease
    last_check_at: datetime | None  # the loop's last connection or poll, or its last failure
    failing_since: datetime | None
    last_error: str | None  # with the diagnosis, where the loop made one
    last_message: LastMessage | None
    counts: Counts = field(default_factory=Counts)

    @property
    def href(self) -> str:
        return _page("mailboxes", self.name)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "state": self.activity,
            "words": self.words,
            "running": self.running,
            "last_check_at": iso(self.last_check_at),
            "failing_since": iso(self.failing_since),
            "last_error": self.last_error,
            "last_message": self.last_message.as_json() if self.last_message else None,
            "counts": self.counts.as_json(),
            "href": self.href,
        }


async def mailbox_states(ctx: Context) -> list[MailboxState]:
    """Every mailbox by name: what it is doing, its last message, its counts, its last error."""
    now = ctx.clock()
    async with ctx.db.session() as session:
        # Leases run on the database's clock (`runtime/leases.py`), whatever this host's says.
        lease_now = await session.scalar(select(database_now())) or now
        mailboxes = list(await session.scalars(select(Mailbox).order_by(Mailbox.name)))
        by_status: dict[int | None, dict[str, int]] = {}
        for mailbox_id, status, count in await session.execute(
            select(Receipt.mailbox_id, Receipt.status, func.count())
            .where(Receipt.mailbox_id.is_not(None))
            .group_by(Receipt.mailbox_id, Receipt.status)
        ):
            by_status.setdefault(mailbox_id, {})[status] = count
        last = await _last_messages(session)
        opened = {
            alert.key: alert.opened_at
            for alert in await session.scalars(
                select(Alert).where(
                    Alert.resolved_at.is_(None), Alert.key.like(f"{IncidentKind.MAILBOX}:%")
                )
            )
        }
    states = []
    for mailbox in mailboxes:
        running = mailbox.lease_until is not None and mailbox.lease_until > lease_now
        doing, words = activity(mailbox.status, running, mailbox.poll_seconds)
        failing_since = None
        if doing == Activity.FAILING:
            key = f"{IncidentKind.MAILBOX}:{mailbox.id}"
            failing_since = opened.get(key) or mailbox.last_check_at
        states.append(
            MailboxState(
                name=mailbox.name,
                protocol=mailbox.protocol,
                activity=doing,
                words=words,
                running=running,
                last_check_at=mailbox.last_check_at,
                failing_since=failing_since,
                last_error=mailbox.last_error,
                last_message=last.get(mailbox.id),
                counts=Counts.of(by_status.get(mailbox.id, {})),
            )
        )
    return states


async def _last_messages(session: AsyncSession) -> dict[int | None, LastMessage]:
    """Each mailbox's last message taken (not one skipped as backlog), with its issue."""
    newest = (
        select(func.max(Receipt.id))
        .where(Receipt.mailbox_id.is_not(None), Receipt.status != ReceiptStatus.SKIPPED)
        .group_by(Receipt.mailbox_id)
    )
    rows = await session.execute(
        select(Receipt, Project.key, Issue.number, Issue.summary)
        .outerjoin(Issue, Receipt.issue_id == Issue.id)
        .outerjoin(Project, Issue.project_id == Project.id)
        .where(Receipt.id.in_(newest))
    )
    return {
        receipt.mailbox_id: LastMessage(
            received_at=receipt.received_at,
            sender=receipt.sender,
            message_id=receipt.message_id,
            outcome=receipt.status,
            issue=f"{key}-{number}" if key else None,
            summary=summary,
        )
        for receipt, key, number, summary in rows
    }
