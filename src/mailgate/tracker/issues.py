"""Issues as people see and change them: the lists and views the CLI, the desk's pages and the
API show, and what an agent does to an issue — comment, close, reopen, assign — with the
notifications and webhook events it causes, written in the same transaction.

Above `service` (the tracker's writes, which the inbound pipeline uses), `search` (the desk's
list) and `notify`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store import audit
from mailgate.store.models import Attachment, Comment, Issue, Person, Project, User, Watcher
from mailgate.store.vocabulary import IssueStatus, PersonKind, WebhookEvent
from mailgate.tracker import notify
from mailgate.tracker.attachments import image_types
from mailgate.tracker.events import issue_event
from mailgate.tracker.search import IssueQuery, Order, Sort
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
    return await ctx.db.read(issue_view, key)


def issue_view(session: Session, key: str) -> dict[str, Any]:
    """An issue with its whole conversation: the fields of `issue show --json`."""
    project, issue = get_issue(session, key)
    reporter = session.get(Person, issue.reporter_id)
    assert reporter is not None
    assignee = session.get(User, issue.assignee_id) if issue.assignee_id is not None else None
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
    images = image_types(session, [a.id for a in attachments])
    count = len(comments)
    return {
        "key": issue_key(project, issue),
        "summary": issue.summary,
        "reporter": reporter.email,
        "assignee": assignee.email if assignee is not None else None,
        "status": issue.status,
        "created_at": issue.created_at.isoformat(),
        "updated_at": issue.updated_at.isoformat(),
        "comments_count": count,
        "source_message_id": issue.source_message_id,
        "description": issue.description,
        "sender_authentication": issue.sender_authentication,
        "watchers": list(watchers),
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "inline": a.inline,
                "sha256": a.sha256,
                "comment": a.comment_id,
                "image_type": images.get(a.id),
            }
            for a in attachments
        ],
        "comments": [_comment(comment, author) for comment, author in comments],
    }


def _comment(comment: Comment, author: Person) -> dict[str, Any]:
    return {
        "id": comment.id,
        "author": author.email,
        "body": comment.body,
        "created_at": comment.created_at.isoformat(),
        "source_message_id": comment.source_message_id,
        "sender_authentication": comment.sender_authentication,
    }


def comments_page(
    session: Session, key: str, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """At most `limit` comments of an issue, oldest first, after the comment `after`; and the
    id to go on after, None on the last page."""
    _, issue = get_issue(session, key)
    query = (
        select(Comment, Person)
        .join(Person, Comment.author_id == Person.id)
        .where(Comment.issue_id == issue.id)
        .order_by(Comment.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Comment.id > after)
    rows = session.execute(query).all()
    shown = [_comment(comment, author) for comment, author in rows[:limit]]
    return shown, (shown[-1]["id"] if len(rows) > limit else None)


def comment_view(session: Session, comment_id: int) -> dict[str, Any]:
    row = session.execute(
        select(Comment, Person)
        .join(Person, Comment.author_id == Person.id)
        .where(Comment.id == comment_id)
    ).one()
    return _comment(*row)


# -- the desk's list ---------------------------------------------------------------------------

ASSIGNEE_ANYONE = ""
ASSIGNEE_NOBODY = "nobody"
ASSIGNEE_ME = "me"


def desk_query(
    me: str,
    *,
    text: str = "",
    project: str = "",
    status: str = "",
    reporter: str = "",
    assignee: str = "",
    has_attachments: str = "",
    updated_since: str = "",
    sort: str = "updated",
    order: str = "desc",
) -> IssueQuery:
    """The search a desk's list or `GET /api/v1/issues` asks for, from what was typed: `status`
    open, closed or any (""); `assignee` "" (anyone), "nobody", "me" (the user `me`) or a
    user's address; `has_attachments` yes, no or ""; `updated_since` a day (YYYY-MM-DD, from
    midnight UTC) or a time in ISO 8601."""
    if status not in ("", "any", *IssueStatus):
        raise BadInput(f"Unknown status {status!r}: use open, closed or any.")
    if has_attachments not in ("", "yes", "no", "true", "false"):
        raise BadInput(f"has_attachments must be yes or no, not {has_attachments!r}.")
    who = assignee.strip().lower()
    return IssueQuery(
        text=text.strip(),
        project=project.strip().upper() or None,
        status=IssueStatus(status) if status in tuple(IssueStatus) else None,
        reporter=reporter.strip().lower() or None,
        assignee={ASSIGNEE_ANYONE: None, ASSIGNEE_NOBODY: "", ASSIGNEE_ME: me}.get(who, who),
        has_attachments=None if not has_attachments else has_attachments in ("yes", "true"),
        updated_since=since(updated_since),
        sort=cast(Sort, sort),  # IssueQuery refuses any other value
        order=cast(Order, order),
    )


def since(text: str) -> datetime | None:
    """A day (midnight UTC) or an ISO 8601 time; None for nothing."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        at = datetime.fromisoformat(text)
        return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    except ValueError:
        raise BadInput(f"{text!r} is not a date: use the form YYYY-MM-DD.") from None
    except OverflowError:  # a time zone that takes it past year 1 or 9999
        raise BadInput(
            f"{text!r} is out of range: give a day between the years 1 and 9999."
        ) from None


@dataclass(frozen=True)
class DeskChoices:
    """What the desk's filters and the Assign button offer."""

    projects: list[str]
    assignees: list[str]  # enabled users, agents and admins, by address


def desk_choices(session: Session) -> DeskChoices:
    projects = session.scalars(select(Project.key).order_by(Project.key)).all()
    users = session.scalars(select(User.email).where(~User.disabled).order_by(User.email)).all()
    return DeskChoices(list(projects), list(users))


# -- what an agent does ------------------------------------------------------------------------


@dataclass(frozen=True)
class Commented:
    comment_id: int
    notified: int  # how many people the comment was mailed to


def write_comment(unit: Unit, key: str, body: str, author: str, *, by_agent: bool) -> Commented:
    """A comment on `key` in the unit's transaction, with what it causes: the notifications to
    the reporter and the watchers (threaded, so their replies come back to the issue) and the
    webhook event. `by_agent`: the author is an agent (else a customer)."""
    if not body.strip():
        raise BadInput("The comment is empty: write what to say.")
    _, issue = get_issue(unit.session, key)
    who = person(unit, author, kind=PersonKind.AGENT if by_agent else PersonKind.CUSTOMER)
    comment_id = add_comment(unit, IssueRef.of(issue), who, body)
    notified = notify.notify(
        unit, notify.Event("commented", issue.id, author.strip().lower(), body, by_agent=by_agent)
    )
    issue_event(unit, WebhookEvent.COMMENT_ADDED, issue.id, comment_id=comment_id)
    return Commented(comment_id, notified)


async def comment_as_agent(ctx: Context, key: str, body: str, author: str | None) -> dict[str, Any]:
    """`mailgate issue comment`: without `author`, an agent's comment by the local admin."""
    if not body.strip():
        raise BadInput("The comment is empty: give --body TEXT.")

    def comment(unit: Unit) -> dict[str, Any]:
        write_comment(unit, key, body, author or "admin@localhost", by_agent=author is None)
        unit.session.expire_all()
        return issue_view(unit.session, key)

    return await Unit.run(ctx, comment)


async def comment_as_user(ctx: Context, key: str, body: str, email: str) -> Commented:
    """A signed-in user's comment: an agent's, by their address."""
    return await Unit.run(ctx, write_comment, key, body, email, by_agent=True)


def change_status(unit: Unit, key: str, status: str, by: str | None = None) -> bool:
    """Open or close an issue in the unit's transaction; the reporter and watchers (but `by`,
    who did it) are told. False when it had that status already (nothing happens)."""
    if status not in tuple(IssueStatus):
        raise BadInput(f"Unknown status {status!r}: use open or closed.")
    _, issue = get_issue(unit.session, key)
    previous = issue.status
    if previous == status:
        return False
    issue.status = status
    issue.updated_at = unit.now()
    unit.session.flush()
    notify.notify(unit, notify.Event("status", issue.id, by, status, by_agent=True))
    issue_event(unit, WebhookEvent.STATUS_CHANGED, issue.id, detail={"previous_status": previous})
    return True


async def set_status(ctx: Context, key: str, status: str, by: str | None = None) -> dict[str, Any]:
    """Open or close an issue (as `by`, a user's address; the local admin without it)."""

    def change(unit: Unit) -> dict[str, Any]:
        change_status(unit, key, status, by)
        return issue_view(unit.session, key)

    return await Unit.run(ctx, change)


async def assign(ctx: Context, key: str, email: str | None) -> dict[str, Any]:
    """Give the issue to an enabled user (agent or admin), or to nobody (`email` None or "")."""
    address = (email or "").strip().lower()

    def change(unit: Unit) -> dict[str, Any]:
        session = unit.session
        _, issue = get_issue(session, key)
        user = None
        if address:
            user = session.scalars(select(User).where(User.email == address)).first()
            if user is None or user.disabled:
                raise BadInput(
                    f"{address} is not an enabled user: assign the issue to an agent or an "
                    "admin (the Users page lists them), or to nobody."
                )
        if issue.assignee_id != (user.id if user else None):
            issue.assignee_id = user.id if user else None
            issue.updated_at = unit.now()
            session.flush()
            audit.record(session, unit.now(), "issue.assign", key, address or "nobody")
        return issue_view(session, key)

    return await Unit.run(ctx, change)
