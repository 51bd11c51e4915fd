"""The built-in tracker's service functions: projects, issues, comments, people, attachments.

Functions that take an `AsyncSession` run inside the caller's transaction (the inbound pipeline
writes an issue, its attachments and the message's receipt in one); the others open their own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store.models import (
    Attachment,
    Blob,
    Comment,
    Issue,
    Person,
    Project,
    ThreadMessage,
    Watcher,
)

KEY_RE = re.compile(r"[A-Z][A-Z0-9_]{0,49}")
ISSUE_KEY_RE = re.compile(r"([A-Z][A-Z0-9_]+)-([0-9]+)")


@dataclass(frozen=True)
class NewAttachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


def issue_key(project: Project, issue: Issue) -> str:
    return f"{project.key}-{issue.number}"


# -- projects ------------------------------------------------------------------------------------


async def add_project(ctx: Context, key: str, name: str, *, smtp: str | None = None) -> Project:
    if not KEY_RE.fullmatch(key):
        raise BadInput(
            f"Project key {key!r} is not valid: use capital letters, digits and _, starting with a "
            "letter (e.g. HELP)."
        )
    if not name.strip():
        raise BadInput("The project name is empty: give --name.")
    async with ctx.db.session() as session, session.begin():
        if await find_project(session, key) is not None:
            raise BadInput(
                f"A project {key} already exists: change it with `mailgate project set {key}`."
            )
        project = Project(key=key, name=name.strip(), smtp=smtp, notify=True, next_number=1)
        session.add(project)
    return project


async def set_project(
    ctx: Context,
    key: str,
    *,
    name: str | None = None,
    smtp: str | None = None,
    notify: bool | None = None,
    default_reporter: str | None = None,
) -> Project:
    async with ctx.db.session() as session, session.begin():
        project = await get_project(session, key)
        if name is not None:
            project.name = name.strip() or project.name
        if smtp is not None:
            project.smtp = smtp or None
        if notify is not None:
            project.notify = notify
        if default_reporter is not None:
            project.default_reporter = default_reporter.strip().lower() or None
    return project


async def find_project(session: AsyncSession, key: str) -> Project | None:
    return (await session.scalars(select(Project).where(Project.key == key))).first()


async def get_project(session: AsyncSession, key: str) -> Project:
    project = await find_project(session, key)
    if project is None:
        raise NotFound(
            f"No project {key!r}: create it with `mailgate project add {key} --name NAME`."
        )
    return project


async def list_projects(ctx: Context) -> list[Project]:
    async with ctx.db.session() as session:
        return list((await session.scalars(select(Project).order_by(Project.key))).all())


# -- people ----------------------------------------------------------------------------------------


async def person(
    session: AsyncSession, email: str, name: str | None = None, kind: str = "customer"
) -> Person:
    """The person with this address, created (as a customer) when new."""
    address = email.strip().lower()
    found = (await session.scalars(select(Person).where(Person.email == address))).first()
    if found is None:
        found = Person(email=address, name=name, kind=kind)
        session.add(found)
        await session.flush()
    elif name and not found.name:
        found.name = name
    return found


async def watch(session: AsyncSession, issue: Issue, who: Person) -> None:
    if issue.reporter_id == who.id:
        return
    exists = await session.get(Watcher, (issue.id, who.id))
    if exists is None:
        session.add(Watcher(issue_id=issue.id, person_id=who.id))


# -- issues and comments -----------------------------------------------------------------------------


async def create_issue(
    session: AsyncSession,
    project: Project,
    reporter: Person,
    summary: str,
    description: str,
    *,
    source_message_id: str | None = None,
    receipt_id: int | None = None,
    sender_authentication: str | None = None,
    attachments: Sequence[NewAttachment] = (),
    watchers: Sequence[Person] = (),
) -> Issue:
    # Numbers come from the project row, incremented in the same transaction.
    number = (
        await session.execute(
            update(Project)
            .where(Project.id == project.id)
            .values(next_number=Project.next_number + 1)
            .returning(Project.next_number)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one() - 1
    issue = Issue(
        project_id=project.id,
        number=number,
        summary=_one_line(summary) or "(no subject)",
        description=description,
        reporter_id=reporter.id,
        status="open",
        source_message_id=source_message_id,
        receipt_id=receipt_id,
        sender_authentication=sender_authentication,
    )
    session.add(issue)
    await session.flush()
    if source_message_id:
        # The pipeline looked the Message-ID up before deciding to create this issue.
        await remember_message(
            session, project.id, source_message_id, issue.id, "in", known_new=True
        )
    await _attach(session, issue, None, attachments)
    for watcher in watchers:
        await watch(session, issue, watcher)
    return issue


async def add_comment(
    session: AsyncSession,
    issue: Issue,
    author: Person,
    body: str,
    *,
    source_message_id: str | None = None,
    receipt_id: int | None = None,
    sender_authentication: str | None = None,
    attachments: Sequence[NewAttachment] = (),
) -> Comment:
    comment = Comment(
        issue_id=issue.id,
        author_id=author.id,
        body=body,
        source_message_id=source_message_id,
        receipt_id=receipt_id,
        sender_authentication=sender_authentication,
    )
    session.add(comment)
    await session.flush()
    if source_message_id:
        # The issue may be in another project than the mailbox's: look the id up there.
        await remember_message(session, issue.project_id, source_message_id, issue.id, "in")
    await _attach(session, issue, comment, attachments)
    issue.updated_at = comment.created_at
    return comment


async def _attach(
    session: AsyncSession,
    issue: Issue,
    comment: Comment | None,
    attachments: Sequence[NewAttachment],
) -> None:
    for item in attachments:
        digest = hashlib.sha256(item.data).hexdigest()
        if await session.get(Blob, digest) is None:
            session.add(Blob(sha256=digest, size=len(item.data), data=item.data))
            await session.flush()
        session.add(
            Attachment(
                issue_id=issue.id,
                comment_id=comment.id if comment else None,
                sha256=digest,
                filename=item.filename,
                content_type=item.content_type,
                size=len(item.data),
                inline=item.inline,
                content_id=item.content_id,
            )
        )


async def remember_message(
    session: AsyncSession,
    project_id: int,
    message_id: str,
    issue_id: int,
    direction: str,
    *,
    known_new: bool = False,
) -> None:
    """Index a Message-ID for threading; `known_new` when the caller already looked it up."""
    if known_new:
        session.add(
            ThreadMessage(
                project_id=project_id,
                message_id=message_id[:998],
                issue_id=issue_id,
                direction=direction,
            )
        )
        await session.flush()
        return
    exists = (
        await session.scalars(
            select(ThreadMessage).where(
                ThreadMessage.project_id == project_id, ThreadMessage.message_id == message_id
            )
        )
    ).first()
    if exists is None:
        session.add(
            ThreadMessage(
                project_id=project_id,
                message_id=message_id[:998],
                issue_id=issue_id,
                direction=direction,
            )
        )
        await session.flush()


async def issue_by_message_id(
    session: AsyncSession, project_id: int, message_ids: list[str]
) -> Issue | None:
    if not message_ids:
        return None
    found = (
        await session.scalars(
            select(ThreadMessage).where(
                ThreadMessage.project_id == project_id, ThreadMessage.message_id.in_(message_ids)
            )
        )
    ).all()
    if not found:
        return None
    # The most specific match: In-Reply-To first, then References from the newest.
    order = {mid: i for i, mid in enumerate(message_ids)}
    best = min(found, key=lambda t: order.get(t.message_id, len(order)))
    return await session.get(Issue, best.issue_id)


async def issue_by_key(session: AsyncSession, key: str) -> tuple[Project, Issue] | None:
    match = ISSUE_KEY_RE.fullmatch(key)
    if not match:
        return None
    project = await find_project(session, match.group(1))
    if project is None:
        return None
    issue = (
        await session.scalars(
            select(Issue).where(Issue.project_id == project.id, Issue.number == int(match.group(2)))
        )
    ).first()
    return (project, issue) if issue else None


async def get_issue(session: AsyncSession, key: str) -> tuple[Project, Issue]:
    found = await issue_by_key(session, key)
    if found is None:
        raise NotFound(f"No issue {key!r}: `mailgate issue list` shows the issues there are.")
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


# -- views -------------------------------------------------------------------------------------------------


async def list_issues(ctx: Context, project_key: str | None = None) -> list[dict[str, Any]]:
    async with ctx.db.session() as session:
        query = (
            select(Issue, Project, Person)
            .join(Project, Issue.project_id == Project.id)
            .join(Person, Issue.reporter_id == Person.id)
            .order_by(Project.key, Issue.number)
        )
        if project_key:
            await get_project(session, project_key)
            query = query.where(Project.key == project_key)
        rows = (await session.execute(query)).all()
        counts = dict(
            (
                await session.execute(
                    select(Comment.issue_id, func.count()).group_by(Comment.issue_id)
                )
            ).all()
        )
        return [
            {
                "key": issue_key(project, issue),
                "summary": issue.summary,
                "reporter": reporter.email,
                "status": issue.status,
                "created_at": issue.created_at.isoformat(),
                "comments": int(counts.get(issue.id, 0)),
                "source_message_id": issue.source_message_id,
            }
            for issue, project, reporter in rows
        ]


async def show_issue(ctx: Context, key: str) -> dict[str, Any]:
    async with ctx.db.session() as session:
        project, issue = await get_issue(session, key)
        reporter = await session.get(Person, issue.reporter_id)
        assert reporter is not None
        watchers = (
            await session.scalars(
                select(Person.email)
                .join(Watcher, Watcher.person_id == Person.id)
                .where(Watcher.issue_id == issue.id)
                .order_by(Person.email)
            )
        ).all()
        comments = (
            await session.execute(
                select(Comment, Person)
                .join(Person, Comment.author_id == Person.id)
                .where(Comment.issue_id == issue.id)
                .order_by(Comment.id)
            )
        ).all()
        attachments = (
            await session.scalars(
                select(Attachment).where(Attachment.issue_id == issue.id).order_by(Attachment.id)
            )
        ).all()
        count = len(comments)
        return {
            "key": issue_key(project, issue),
            "summary": issue.summary,
            "reporter": reporter.email,
            "status": issue.status,
            "created_at": issue.created_at.isoformat(),
            "comments_count": count,
            "source_message_id": issue.source_message_id,
            "description": issue.description,
            "sender_authentication": issue.sender_authentication,
            "watchers": list(watchers),
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "inline": a.inline,
                    "sha256": a.sha256,
                    "comment": a.comment_id,
                }
                for a in attachments
            ],
            "comments": [
                {
                    "author": author.email,
                    "body": comment.body,
                    "created_at": comment.created_at.isoformat(),
                    "source_message_id": comment.source_message_id,
                }
                for comment, author in comments
            ],
        }


async def comment_as_agent(ctx: Context, key: str, body: str, author: str | None) -> dict[str, Any]:
    if not body.strip():
        raise BadInput("The comment is empty: give --body TEXT.")
    async with ctx.db.session() as session, session.begin():
        _, issue = await get_issue(session, key)
        who = await person(
            session, author or "admin@localhost", kind="agent" if author is None else "customer"
        )
        await add_comment(session, issue, who, body)
    return await show_issue(ctx, key)
