"""Issues as people see and change them: the lists and views the CLI (and the web) show, and
what an agent does to an issue — comment, close, reopen — with the notifications it causes.

Above `service` (the tracker's writes, which the inbound pipeline uses) and `notify`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store.models import Attachment, Comment, Issue, Person, Project, Watcher
from mailgate.store.vocabulary import IssueStatus, PersonKind
from mailgate.tracker import notify
from mailgate.tracker.service import (
    IssueRef,
    add_comment,
    get_issue,
    get_project,
    issue_key,
    person,
)
from mailgate.unit import Unit


async def list_issues(ctx: Context, project_key: str | None = None) -> list[dict[str, Any]]:
    return await ctx.db.run(issues_view, project_key)


def issues_view(session: Session, project_key: str | None = None) -> list[dict[str, Any]]:
    query = (
        select(Issue, Project, Person)
        .join(Project, Issue.project_id == Project.id)
        .join(Person, Issue.reporter_id == Person.id)
        .order_by(Project.key, Issue.number)
    )
    if project_key:
        get_project(session, project_key)
        query = query.where(Project.key == project_key)
    rows = (session.execute(query)).all()
    counts = dict(
        (session.execute(select(Comment.issue_id, func.count()).group_by(Comment.issue_id))).all()
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
    return await ctx.db.run(issue_view, key)


def issue_view(session: Session, key: str) -> dict[str, Any]:
    project, issue = get_issue(session, key)
    reporter = session.get(Person, issue.reporter_id)
    assert reporter is not None
    watchers = (
        session.scalars(
            select(Person.email)
            .join(Watcher, Watcher.person_id == Person.id)
            .where(Watcher.issue_id == issue.id)
            .order_by(Person.email)
        )
    ).all()
    comments = (
        session.execute(
            select(Comment, Person)
            .join(Person, Comment.author_id == Person.id)
            .where(Comment.issue_id == issue.id)
            .order_by(Comment.id)
        )
    ).all()
    attachments = (
        session.scalars(
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

    def comment(unit: Unit) -> dict[str, Any]:
        _, issue = get_issue(unit.session, key)
        address = author or "admin@localhost"
        kind = PersonKind.AGENT if author is None else PersonKind.CUSTOMER
        who = person(unit, address, kind=kind)
        add_comment(unit, IssueRef.of(issue), who, body)
        notify.notify(
            unit, notify.Event("commented", issue.id, address, body, by_agent=author is None)
        )
        unit.session.expire_all()
        return issue_view(unit.session, key)

    return await Unit.run(ctx, comment)


async def set_status(ctx: Context, key: str, status: str) -> dict[str, Any]:
    """Open or close an issue as the local admin; the reporter and watchers are told."""
    if status not in tuple(IssueStatus):
        raise BadInput(f"Unknown status {status!r}: use open or closed.")

    def change(unit: Unit) -> dict[str, Any]:
        _, issue = get_issue(unit.session, key)
        if issue.status != status:
            issue.status = status
            issue.updated_at = unit.now()
            unit.session.flush()
            notify.notify(unit, notify.Event("status", issue.id, None, status, by_agent=True))
        return issue_view(unit.session, key)

    return await Unit.run(ctx, change)
