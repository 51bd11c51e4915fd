"""What a received message becomes in the tracker: parse, classify, route, write — inside the
transaction that records the message's receipt (see `pipeline`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.inbound import route
from mailgate.inbound.parse import InboundMessage, parse_message
from mailgate.store.models import Issue, Person, Project, Receipt, ThreadMessage, Watcher
from mailgate.tracker import service

log = structlog.get_logger(__name__)

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_ATTACHMENTS_PER_MESSAGE = 25 * 1024 * 1024


@dataclass(frozen=True)
class Destination:
    """Where messages of one source go, and how."""

    project: str
    options: route.RouteOptions = field(default_factory=route.RouteOptions)
    own_addresses: tuple[str, ...] = ()  # the mailbox's own address: never a watcher
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    max_attachments_per_message: int = DEFAULT_MAX_ATTACHMENTS_PER_MESSAGE


async def handle(session: AsyncSession, receipt: Receipt, destination: Destination) -> None:
    """Turn the receipt's message into an issue or comment; set the receipt's status and reason."""
    assert receipt.raw is not None
    message = parse_message(receipt.raw)
    # One lookup per transaction: a batch of ingested messages shares it.
    projects: dict[str, Project | None] = session.info.setdefault("projects", {})
    if destination.project not in projects:
        projects[destination.project] = await service.find_project(session, destination.project)
    project = projects[destination.project]
    if project is None:
        _mark(
            receipt,
            "quarantined",
            f"project {destination.project} does not exist: create it with "
            f"`mailgate project add {destination.project} --name NAME`, then `mailgate quarantine retry {receipt.id}`",
        )
        return
    receipt.project = project.key
    receipt.sender = message.from_.address or None
    match = await _match(
        session, project, message, receipt, destination.options.max_per_sender_hour
    )
    decision = route.decide(
        automated=message.automated,
        recipients=[*message.to, *message.cc],
        options=destination.options,
        match=match,
        dmarc=message.auth.dmarc,
    )
    if isinstance(decision, route.Ignore):
        _mark(receipt, "ignored", decision.reason)
    elif isinstance(decision, route.Quarantine):
        _mark(receipt, "quarantined", decision.reason)
    elif isinstance(decision, route.Duplicate):
        _mark(
            receipt,
            "duplicate",
            "this Message-ID already made an issue in the project",
            decision.issue_id,
        )
    elif isinstance(decision, route.AddComment):
        issue = await session.get(Issue, decision.issue_id)
        assert issue is not None
        author = await service.person(session, message.from_.address, message.from_.name)
        attachments, notes = _attachments(message, destination)
        body = route.comment_body(message.reply_text, message.body_text, destination.options)
        await service.add_comment(
            session,
            issue,
            author,
            _with_notes(body, notes),
            source_message_id=message.message_id,
            receipt_id=receipt.id,
            sender_authentication=message.auth.summary or None,
            attachments=attachments,
        )
        await service.watch(session, issue, author)  # Jira: a commenter becomes a watcher
        _mark(receipt, "commented", None, issue.id)
    else:
        reporter = await _reporter(session, project, message, destination)
        if reporter is None:
            _mark(
                receipt,
                "quarantined",
                f"the sender {message.from_.address or '(none)'} is not known and the "
                "project has no default reporter (`mailgate project set KEY --default-reporter ADDRESS`)",
            )
            return
        watchers = []
        if destination.options.cc_watchers:
            own = {a.lower() for a in destination.own_addresses}
            for address in message.cc:
                if address not in own and address != reporter.email:
                    watchers.append(await service.person(session, address))
        attachments, notes = _attachments(message, destination)
        issue = await service.create_issue(
            session,
            project,
            reporter,
            message.subject,
            _with_notes(message.body_text, notes),
            source_message_id=message.message_id,
            receipt_id=receipt.id,
            sender_authentication=message.auth.summary or None,
            attachments=attachments,
            watchers=watchers,
        )
        _mark(receipt, "created", None, issue.id)


def _mark(receipt: Receipt, status: str, reason: str | None, issue_id: int | None = None) -> None:
    receipt.status = status
    receipt.reason = reason
    receipt.issue_id = issue_id


async def _match(
    session: AsyncSession,
    project: Project,
    message: InboundMessage,
    receipt: Receipt,
    flood_limit: int,
) -> route.Match:
    recent = 0
    if message.from_.address and flood_limit:
        since = receipt.received_at - timedelta(hours=1)
        recent = int(
            await session.scalar(
                select(func.count())
                .select_from(Receipt)
                .where(
                    Receipt.sender == message.from_.address,
                    Receipt.project == project.key,
                    Receipt.received_at >= since,
                    Receipt.status.in_(("created", "commented")),
                    Receipt.id != receipt.id,
                )
            )
            or 0
        )
    if message.message_id:
        seen = (
            await session.scalars(
                select(ThreadMessage).where(
                    ThreadMessage.project_id == project.id,
                    ThreadMessage.message_id == message.message_id,
                )
            )
        ).first()
        if seen is not None:
            return route.Match(issue_id=None, duplicate_of=seen.issue_id, sender_last_hour=recent)
    issue: Issue | None = None
    for key in message.issue_keys:  # the first key of a known issue wins
        found = await service.issue_by_key(session, key)
        if found is not None:
            issue = found[1]
            break
    if issue is None:
        replied = [m for m in [message.in_reply_to, *reversed(message.references)] if m]
        issue = await service.issue_by_message_id(session, project.id, replied)
    if issue is None:
        return route.Match(issue_id=None, sender_last_hour=recent)
    if message.message_id and issue.project_id != project.id:
        # A key of another project: this Message-ID may already be a comment there.
        seen_there = (
            await session.scalars(
                select(ThreadMessage).where(
                    ThreadMessage.project_id == issue.project_id,
                    ThreadMessage.message_id == message.message_id,
                )
            )
        ).first()
        if seen_there is not None:
            return route.Match(issue_id=None, duplicate_of=seen_there.issue_id)
    sender = (
        await session.scalars(select(Person).where(Person.email == message.from_.address))
    ).first()
    participant = sender is not None and (
        sender.id == issue.reporter_id
        or await session.get(Watcher, (issue.id, sender.id)) is not None
    )
    return route.Match(
        issue_id=issue.id, sender_is_participant=participant, sender_last_hour=recent
    )


async def _reporter(
    session: AsyncSession, project: Project, message: InboundMessage, destination: Destination
) -> Person | None:
    if message.from_.address:
        known = (
            await session.scalars(select(Person).where(Person.email == message.from_.address))
        ).first()
        if known is not None or destination.options.create_customers:
            return known or await service.person(session, message.from_.address, message.from_.name)
    if project.default_reporter:
        return await service.person(session, project.default_reporter)
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
            size > destination.max_attachment_bytes
            or total + size > destination.max_attachments_per_message
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
