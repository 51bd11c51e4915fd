"""What a received message becomes in the tracker: classify, route, write — inside the
transaction that records the message's receipt (see `pipeline`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from mailgate.inbound import route
from mailgate.inbound.parse import InboundMessage
from mailgate.store.models import Project, Receipt
from mailgate.tracker import notify, service

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Destination:
    """Where messages of one source go, and how."""

    project: str
    options: route.RouteOptions = field(default_factory=route.RouteOptions)
    own_addresses: tuple[str, ...] = ()  # the mailbox's own address: never a watcher


@dataclass(frozen=True)
class Outcome:
    """What the message became: the receipt's status, reason and issue."""

    status: str  # created, commented, ignored, duplicate, quarantined
    reason: str | None = None
    issue_id: int | None = None
    project: str | None = None
    sender: str | None = None
    post_action: str | None = None  # the message's own, instead of the mailbox's
    forward_to: str | None = None  # automated mail sent on (`--bulk forward:ADDRESS`)


RECEIPTS = service.table_of(Receipt)
# Messages from one sender that became issues or comments of a project lately.
_FROM_SENDER = (
    select(func.count())
    .select_from(RECEIPTS)
    .where(
        RECEIPTS.c.sender == bindparam("sender"),
        RECEIPTS.c.project == bindparam("project"),
        RECEIPTS.c.status.in_(("created", "commented")),
        RECEIPTS.c.received_at >= bindparam("since"),
        RECEIPTS.c.id != bindparam("receipt"),
    )
)


def handle(
    session: Session,
    receipt_id: int,
    received_at: datetime,
    message: InboundMessage,
    destination: Destination,
) -> Outcome:
    """Turn a received message into an issue or comment (or decide not to), in the caller's
    transaction."""
    # One lookup per transaction: a batch of messages shares it.
    projects: dict[str, Project | None] = session.info.setdefault("projects", {})
    if destination.project not in projects:
        projects[destination.project] = service.find_project(session, destination.project)
    project = projects[destination.project]
    if project is None:
        return Outcome(
            "quarantined",
            f"project {destination.project} does not exist: create it with "
            f"`mailgate project add {destination.project} --name NAME`, then "
            f"`mailgate quarantine retry {receipt_id}`",
        )
    sender = message.from_.address or None
    match, found = _match(
        session, project, message, receipt_id, received_at, destination.options.max_per_sender_hour
    )
    decision = route.decide(
        automated=message.automated,
        recipients=[*message.to, *message.cc],
        options=destination.options,
        match=match,
        dmarc=message.auth.dmarc,
    )
    if isinstance(decision, route.Ignore):
        then = "delete" if decision.delete else None
        return Outcome(
            "ignored",
            decision.reason,
            project=project.key,
            sender=sender,
            post_action=then,
            forward_to=decision.forward_to,
        )
    if isinstance(decision, route.Quarantine):
        return Outcome("quarantined", decision.reason, project=project.key, sender=sender)
    if isinstance(decision, route.Duplicate):
        return Outcome(
            "duplicate",
            "this Message-ID already made an issue in the project",
            decision.issue_id,
            project=project.key,
            sender=sender,
        )
    if isinstance(decision, route.AddComment):
        assert found is not None
        author = service.person(session, message.from_.address, message.from_.name)
        attachments, notes = _attachments(message, destination)
        body = route.comment_body(message.reply_text, message.body_text, destination.options)
        service.add_comment(
            session,
            found,
            author,
            _with_notes(body, notes),
            source_message_id=message.message_id,
            receipt_id=receipt_id,
            sender_authentication=message.auth.summary or None,
            attachments=attachments,
        )
        service.watch(session, found, author)  # Jira: a commenter becomes a watcher
        if found.project_id != project.id or notify.wanted(session, project):
            event = notify.Event("commented", found.id, message.from_.address, body)
            _notify(session, event)
        return Outcome("commented", None, found.id, project=project.key, sender=sender)
    reporter = _reporter(session, project, message, destination)
    if reporter is None:
        return Outcome(
            "quarantined",
            f"the sender {message.from_.address or '(none)'} is not known and the "
            "project has no default reporter (`mailgate project set KEY --default-reporter ADDRESS`)",
            project=project.key,
            sender=sender,
        )
    watchers = []
    if destination.options.cc_watchers:
        own = {a.lower() for a in destination.own_addresses}
        for address in message.cc:
            if address not in own and not notify.looks_automated(address):
                watchers.append(service.person(session, address))
    attachments, notes = _attachments(message, destination)
    issue = service.create_issue(
        session,
        project.id,
        reporter,
        message.subject,
        _with_notes(message.body_text, notes),
        source_message_id=message.message_id,
        receipt_id=receipt_id,
        sender_authentication=message.auth.summary or None,
        attachments=attachments,
        watcher_ids=watchers,
    )
    # `--bulk accept`: an automated sender gets no acknowledgement.
    if not message.automated and notify.wanted(session, project):
        _notify(session, notify.Event("created", issue.id, None))
    return Outcome("created", None, issue.id, project=project.key, sender=sender)


def _notify(session: Session, event: notify.Event) -> None:
    """Queue the event's notification in its own savepoint: if composing it fails, the mail
    still becomes its issue or comment (the failure is logged for the admin)."""
    try:
        with session.begin_nested():
            notify.notify(session, event)
    except Exception:  # a notification must never cost a customer's message
        log.exception("notification could not be composed", issue=event.issue_id)


def _match(
    session: Session,
    project: Project,
    message: InboundMessage,
    receipt_id: int,
    received_at: datetime,
    flood_limit: int,
) -> tuple[route.Match, service.IssueRef | None]:
    """What routing needs to know, and the issue the message names (if any)."""
    recent = 0
    if message.from_.address and flood_limit:
        since = received_at - timedelta(hours=1)
        values = {"sender": message.from_.address, "project": project.key, "since": since}
        found = session.connection().execute(_FROM_SENDER, {**values, "receipt": receipt_id})
        recent = int(found.scalar() or 0)
    if message.message_id:
        seen = service.thread_issue(session, project.id, message.message_id)
        if seen is not None:
            return route.Match(issue_id=None, duplicate_of=seen, sender_last_hour=recent), None
    issue: service.IssueRef | None = None
    for key in message.issue_keys:  # the first key of a known issue wins
        issue = service.issue_ref_by_key(session, key)
        if issue is not None:
            break
    if issue is None:
        replied = [m for m in [message.in_reply_to, *reversed(message.references)] if m]
        issue = service.issue_by_message_id(session, project.id, replied)
    if issue is None:
        return route.Match(issue_id=None, sender_last_hour=recent), None
    if message.message_id and issue.project_id != project.id:
        # A key of another project: this Message-ID may already be a comment there.
        seen_there = service.thread_issue(session, issue.project_id, message.message_id)
        if seen_there is not None:
            return route.Match(issue_id=None, duplicate_of=seen_there), None
    participant = bool(message.from_.address) and service.is_participant(
        session, issue, message.from_.address
    )
    return route.Match(
        issue_id=issue.id, sender_is_participant=participant, sender_last_hour=recent
    ), issue


def _reporter(
    session: Session, project: Project, message: InboundMessage, destination: Destination
) -> int | None:
    address = message.from_.address
    if address and (
        destination.options.create_customers or service.person_exists(session, address)
    ):
        return service.person(session, address, message.from_.name)
    if project.default_reporter:
        return service.person(session, project.default_reporter)
    return None


def _attachments(
    message: InboundMessage, destination: Destination
) -> tuple[list[service.NewAttachment], list[str]]:
    kept: list[service.NewAttachment] = []
    notes: list[str] = []
    total = 0
    for attachment in message.attachments:
        size = len(attachment.data)
        if (
            size > destination.options.max_attachment_bytes
            or total + size > destination.options.max_attachments_bytes
        ):
            notes.append(
                f"[attachment {attachment.filename} ({size} bytes) not kept: over the size limit]"
            )
            continue
        total += size
        kept.append(
            service.NewAttachment(
                filename=attachment.filename,
                content_type=attachment.content_type,
                data=attachment.data,
                inline=attachment.inline,
                content_id=attachment.content_id,
            )
        )
    return kept, notes


def _with_notes(text: str, notes: list[str]) -> str:
    return "\n\n".join([text.rstrip(), *notes]) if notes else text
