"""What a received message becomes in the tracker: classify, route, write — inside the
transaction that records the message's receipt (see `pipeline`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from mailgate.errors import BadInput
from mailgate.inbound import route
from mailgate.inbound.parse import InboundMessage
from mailgate.mail import smtp_servers
from mailgate.store.models import Project, Receipt
from mailgate.store.vocabulary import PostAction, ReceiptStatus
from mailgate.tracker import notify, service
from mailgate.unit import Unit

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

    status: ReceiptStatus
    reason: str | None = None
    issue_id: int | None = None
    project: str | None = None
    sender: str | None = None
    post_action: PostAction | None = None  # the message's own, instead of the mailbox's
    forward_to: str | None = None  # automated mail sent on (`--bulk forward:ADDRESS`)


RECEIPTS = service.table_of(Receipt)
# Messages from one sender that became issues or comments of a project lately.
_FROM_SENDER = (
    select(func.count())
    .select_from(RECEIPTS)
    .where(
        RECEIPTS.c.sender == bindparam("sender"),
        RECEIPTS.c.project == bindparam("project"),
        RECEIPTS.c.status.in_((ReceiptStatus.CREATED, ReceiptStatus.COMMENTED)),
        RECEIPTS.c.received_at >= bindparam("since"),
        RECEIPTS.c.id != bindparam("receipt"),
    )
)
# Comments one sender made on one issue lately (the index on sender, project, status and time
# narrows it to the sender's recent comments in the project).
_ON_ISSUE_FROM_SENDER = (
    select(func.count())
    .select_from(RECEIPTS)
    .where(
        RECEIPTS.c.sender == bindparam("sender"),
        RECEIPTS.c.project == bindparam("project"),
        RECEIPTS.c.status == ReceiptStatus.COMMENTED,
        RECEIPTS.c.received_at >= bindparam("since"),
        RECEIPTS.c.issue_id == bindparam("issue"),
    )
)


def handle(
    unit: Unit,
    receipt_id: int,
    received_at: datetime,
    message: InboundMessage,
    destination: Destination,
) -> Outcome:
    """Turn a received message into an issue or comment (or decide not to), in the caller's
    transaction."""
    project = _project(unit, destination.project)
    if project is None:
        return Outcome(
            ReceiptStatus.QUARANTINED,
            f"project {destination.project} does not exist: create it with "
            f"`mailgate project add {destination.project} --name NAME`, then "
            f"`mailgate quarantine retry {receipt_id}`",
        )
    sender = message.from_.address or None
    problem = sender_problem(message)
    match, found = _match(
        unit.session,
        project,
        message,
        receipt_id,
        received_at,
        destination.options,
        problem is None,
    )
    decision = route.decide(
        automated=message.automated,
        recipients=[*message.to, *message.cc],
        options=destination.options,
        match=match,
        dmarc=message.auth.dmarc,
        sender_problem=problem,
    )
    if isinstance(decision, route.Ignore):
        then = PostAction.DELETE if decision.delete else None
        return Outcome(
            ReceiptStatus.IGNORED,
            decision.reason,
            project=project.key,
            sender=sender,
            post_action=then,
            forward_to=decision.forward_to,
        )
    if isinstance(decision, route.Quarantine):
        # A message held for an agent keeps its issue: `quarantine retry --as-comment` uses it.
        return Outcome(
            ReceiptStatus.QUARANTINED,
            decision.reason,
            decision.issue_id,
            project=project.key,
            sender=sender,
        )
    if isinstance(decision, route.Duplicate):
        return Outcome(
            ReceiptStatus.DUPLICATE,
            "this Message-ID already made an issue in the project",
            decision.issue_id,
            project=project.key,
            sender=sender,
        )
    if isinstance(decision, route.AddComment):
        assert found is not None
        return _comment(unit, receipt_id, message, destination, project, found)
    return _create(unit, receipt_id, message, destination, project)


def accept_as_comment(
    unit: Unit,
    receipt_id: int,
    message: InboundMessage,
    destination: Destination,
    issue_id: int,
) -> Outcome:
    """An agent's decision for a message held for them: a comment on `issue_id` after all,
    notified like any comment — once: a copy of a message already taken (held twice, through
    two mailboxes or sent again) is a duplicate."""
    problem = sender_problem(message)
    if problem is not None:
        raise BadInput(f"Message {receipt_id} cannot become a comment: {problem}.")
    project = _project(unit, destination.project)
    issue = service.issue_ref_by_id(unit.session, issue_id)
    if project is None or issue is None:
        raise BadInput(
            f"Message {receipt_id} was held for an issue or project that no longer exists: "
            f"retry it without --as-comment."
        )
    if message.message_id:
        for project_id in dict.fromkeys((project.id, issue.project_id)):
            taken = service.thread_issue(unit.session, project_id, message.message_id)
            if taken is not None:
                return Outcome(
                    ReceiptStatus.DUPLICATE,
                    "this Message-ID was already taken (an earlier copy of the message)",
                    taken,
                    project=project.key,
                    sender=message.from_.address,
                )
    return _comment(unit, receipt_id, message, destination, project, issue)


def sender_problem(message: InboundMessage) -> str | None:
    """Why the From header gives no address mail can be answered at, or None when it does."""
    # The header parser says why when it knows (a group, an address without a domain, an
    # address only in the display name).
    if message.from_problem:
        return message.from_problem
    address = message.from_.address
    if not address:
        return "the From header gives no address"
    if not smtp_servers.is_address(address):
        shown = address if len(address) <= 80 else address[:80] + "…"
        return (
            f"the From address {shown!r} is not a mailbox mail can be sent to (no domain, or "
            "one spelled in characters mail servers do not use)"
        )
    return None


def _project(unit: Unit, key: str) -> Project | None:
    # One lookup per transaction: a batch of messages shares it.
    if key not in unit.projects:
        unit.projects[key] = service.find_project(unit.session, key)
    return unit.projects[key]


def _comment(
    unit: Unit,
    receipt_id: int,
    message: InboundMessage,
    destination: Destination,
    project: Project,
    found: service.IssueRef,
) -> Outcome:
    author = service.person(unit, message.from_.address, message.from_.name)
    attachments, notes = _attachments(message, destination)
    body = route.comment_body(message.reply_text, message.body_text, destination.options)
    service.add_comment(
        unit,
        found,
        author,
        _with_notes(body, notes),
        source_message_id=message.message_id,
        receipt_id=receipt_id,
        sender_authentication=message.auth.summary or None,
        attachments=attachments,
    )
    service.watch(unit.session, found, author)  # Jira: a commenter becomes a watcher
    if found.project_id != project.id or notify.wanted(unit, project):
        _notify(unit, notify.Event("commented", found.id, message.from_.address, body))
    sender = message.from_.address
    return Outcome(ReceiptStatus.COMMENTED, None, found.id, project=project.key, sender=sender)


def _create(
    unit: Unit,
    receipt_id: int,
    message: InboundMessage,
    destination: Destination,
    project: Project,
) -> Outcome:
    sender = message.from_.address
    reporter = _reporter(unit, project, message, destination)
    if reporter is None:
        return Outcome(
            ReceiptStatus.QUARANTINED,
            f"the sender {sender} is not known and the project has no default reporter "
            "(`mailgate project set KEY --default-reporter ADDRESS`)",
            project=project.key,
            sender=sender,
        )
    watching, left_out = route.cc_watchers(
        message.cc,
        options=destination.options,
        never={*destination.own_addresses, *notify.own_addresses(unit), sender},
        may_watch=notify.may_receive,
    )
    watchers = [service.person(unit, address) for address in watching]
    attachments, notes = _attachments(message, destination)
    note = route.left_out_note(left_out, destination.options)
    issue = service.create_issue(
        unit,
        project.id,
        reporter,
        message.subject,
        _with_notes(message.body_text, [*notes, *([note] if note else [])]),
        source_message_id=message.message_id,
        receipt_id=receipt_id,
        sender_authentication=message.auth.summary or None,
        attachments=attachments,
        watcher_ids=watchers,
    )
    # `--bulk accept`: an automated sender gets no acknowledgement.
    if not message.automated and notify.wanted(unit, project):
        _notify(unit, notify.Event("created", issue.id, None))
    return Outcome(ReceiptStatus.CREATED, None, issue.id, project=project.key, sender=sender)


def _notify(unit: Unit, event: notify.Event) -> None:
    """Queue the event's notification in its own savepoint: if composing it fails, the mail
    still becomes its issue or comment (the failure is logged for the admin)."""
    try:
        with unit.session.begin_nested():
            notify.notify(unit, event)
    except Exception:  # a notification must never cost a customer's message
        log.exception("notification could not be composed", issue=event.issue_id)


def _match(
    session: Session,
    project: Project,
    message: InboundMessage,
    receipt_id: int,
    received_at: datetime,
    options: route.RouteOptions,
    sender_known: bool,
) -> tuple[route.Match, service.IssueRef | None]:
    """What routing needs to know, and the issue the message names (if any)."""
    since = received_at - timedelta(hours=1)
    sender = message.from_.address if sender_known else ""
    recent = 0
    if sender and options.max_per_sender_hour:
        values = {"sender": sender, "project": project.key, "since": since}
        found = session.connection().execute(_FROM_SENDER, {**values, "receipt": receipt_id})
        recent = int(found.scalar() or 0)
    if message.message_id:
        seen = service.thread_issue(session, project.id, message.message_id)
        if seen is not None:
            return route.Match(issue_id=None, duplicate_of=seen, sender_last_hour=recent), None
    issue, key = _named_issue(session, project, message, options)
    if issue is None:
        return route.Match(issue_id=None, sender_last_hour=recent), None
    if message.message_id and issue.project_id != project.id:
        # A key of another project: this Message-ID may already be a comment there.
        seen_there = service.thread_issue(session, issue.project_id, message.message_id)
        if seen_there is not None:
            return route.Match(issue_id=None, duplicate_of=seen_there), None
    participant = bool(sender) and service.is_participant(session, issue, sender)
    comments = 0
    if sender and options.max_comments_per_issue_hour:
        values = {"sender": sender, "project": project.key, "issue": issue.id, "since": since}
        comments = int(session.connection().execute(_ON_ISSUE_FROM_SENDER, values).scalar() or 0)
    match = route.Match(
        issue_id=issue.id,
        sender_is_participant=participant,
        sender_last_hour=recent,
        issue_key=key,
        sender_comments_last_hour=comments,
    )
    return match, issue


def _named_issue(
    session: Session, project: Project, message: InboundMessage, options: route.RouteOptions
) -> tuple[service.IssueRef | None, str | None]:
    """The issue the message is about, and its key: by a key in the subject (the first of a
    known issue wins), else by In-Reply-To / References within the project."""
    for key in route.keys_to_follow(message.issue_keys, project.key, options):
        issue = service.issue_ref_by_key(session, key)
        if issue is not None:
            return issue, key
    replied = [m for m in [message.in_reply_to, *reversed(message.references)] if m]
    issue = service.issue_by_message_id(session, project.id, replied)
    return issue, (f"{project.key}-{issue.number}" if issue is not None else None)


def _reporter(
    unit: Unit, project: Project, message: InboundMessage, destination: Destination
) -> int | None:
    """The sender as a customer; with `--no-create-customers`, a sender who is not known yet
    (but has a usable address: others are quarantined before) is filed under the project's
    default reporter; None when there is none."""
    address = message.from_.address
    if address and (
        destination.options.create_customers or service.person_exists(unit.session, address)
    ):
        return service.person(unit, address, message.from_.name)
    if project.default_reporter:
        return service.person(unit, project.default_reporter)
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
