"""Finding issues: the desk's list, the API's `GET /api/v1/issues` — full-text search over
summary, description, comments and reporter, filters, sorting, and keyset pagination that
costs the same on the thousandth page as on the first.

One function, two databases: SQLite searches its FTS5 tables (`issues_fts`, `comments_fts`),
PostgreSQL its GIN indexes over the same text (migration 0012); both are kept by the database
itself in the writer's transaction, so an issue is findable the moment it is committed.
SQLite folds accents (`cafe` finds "café"); PostgreSQL's `simple` configuration does not
(that needs the `unaccent` extension, which mailgate does not ask a database administrator
for).

What a visitor types never reaches a query's syntax: it is cut into words (letters and digits),
each quoted, at most `MAX_WORDS` of them; every word must match, the last one as a prefix.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, tuple_
from sqlalchemy.orm import Session

from mailgate.errors import BadInput
from mailgate.store.models import Attachment, Comment, Issue, Person, Project, User
from mailgate.store.vocabulary import IssueStatus
from mailgate.tracker.service import ISSUE_KEY_RE, get_project

MAX_WORDS = 16
MAX_QUERY = 500  # characters of a search
MAX_LIMIT = 200
MAX_CURSOR = 200  # characters: a cursor this module made is under 100
DEFAULT_LIMIT = 50
_WORD = re.compile(r"[^\W_]+")

Sort = Literal["updated", "created"]
Order = Literal["desc", "asc"]


@dataclass(frozen=True)
class IssueQuery:
    """What the desk's list shows: every field optional; nothing given is every issue, the
    newest activity first."""

    text: str = ""
    project: str | None = None
    status: IssueStatus | None = None
    reporter: str | None = None  # an email address
    assignee: str | None = None  # a user's email address, or "" for nobody
    has_attachments: bool | None = None
    updated_since: datetime | None = None
    sort: Sort = "updated"
    order: Order = "desc"

    def __post_init__(self) -> None:
        if len(self.text) > MAX_QUERY:
            raise BadInput(f"The search is too long: keep it under {MAX_QUERY} characters.")
        if self.sort not in ("updated", "created"):
            raise BadInput(f"Unknown sort {self.sort!r}: use updated or created.")
        if self.order not in ("desc", "asc"):
            raise BadInput(f"Unknown order {self.order!r}: use desc or asc.")


@dataclass(frozen=True)
class IssuePage:
    items: list[dict[str, Any]]  # the fields of `issue list --json`, and more
    next: str | None  # the cursor of the next page, None on the last


def search_issues(
    session: Session, query: IssueQuery, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> IssuePage:
    """One page of the issues `query` finds, in its order, after `cursor`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}.")
    sort_column = Issue.updated_at if query.sort == "updated" else Issue.created_at
    statement = (
        select(Issue, Project.key, Person.email, User.email)
        .join(Project, Project.id == Issue.project_id)
        .join(Person, Person.id == Issue.reporter_id)
        .outerjoin(User, User.id == Issue.assignee_id)
        .where(*_filters(session, query))
    )
    if cursor is not None:
        statement = statement.where(_after(sort_column, query, cursor))
    if query.order == "desc":
        statement = statement.order_by(sort_column.desc(), Issue.id.desc())
    else:
        statement = statement.order_by(sort_column.asc(), Issue.id.asc())
    rows = session.execute(statement.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [issue.id for issue, *_ in rows]
    comments = _counts(session, Comment.issue_id, ids)
    attachments = _counts(session, Attachment.issue_id, ids)
    items = [
        {
            "key": f"{key}-{issue.number}",
            "project": key,
            "summary": issue.summary,
            "reporter": reporter,
            "assignee": assignee,
            "status": issue.status,
            "created_at": issue.created_at.isoformat(),
            "updated_at": issue.updated_at.isoformat(),
            "comments": comments.get(issue.id, 0),
            "attachments": attachments.get(issue.id, 0),
            "source_message_id": issue.source_message_id,
        }
        for issue, key, reporter, assignee in rows
    ]
    following = None
    if more:
        last = rows[-1][0]
        following = _cursor(
            query, last.updated_at if query.sort == "updated" else last.created_at, last.id
        )
    return IssuePage(items, following)


def _filters(session: Session, query: IssueQuery) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if query.project:
        found.append(Issue.project_id == get_project(session, query.project).id)
    if query.status:
        found.append(Issue.status == query.status)
    if query.reporter:
        found.append(Person.email == query.reporter.strip().lower())
    if query.assignee is not None:
        if query.assignee.strip():
            found.append(User.email == query.assignee.strip().lower())
        else:
            found.append(Issue.assignee_id.is_(None))
    if query.has_attachments is not None:
        some = select(Attachment.id).where(Attachment.issue_id == Issue.id).exists()
        found.append(some if query.has_attachments else ~some)
    if query.updated_since is not None:
        found.append(Issue.updated_at >= query.updated_since)
    if query.text.strip():
        found.append(_matches(session, query.text))
    return found


def words(text: str) -> list[str]:
    """The words of a search, as the index cut the text: letters and digits."""
    return _WORD.findall(text)[:MAX_WORDS]


def _matches(session: Session, text: str) -> ColumnElement[bool]:
    """Issues whose summary, description or reporter holds every word, or one of whose
    comments does; an issue key typed alone (HELP-12) finds that issue too."""
    terms = words(text)
    by_key: list[ColumnElement[bool]] = []
    key = ISSUE_KEY_RE.fullmatch(text.strip().upper())
    if key and len(key.group(2)) <= 9:
        by_key.append(and_(Project.key == key.group(1), Issue.number == int(key.group(2))))
    if not terms:
        return or_(sa.false(), *by_key)
    if session.get_bind().dialect.name == "sqlite":
        match = " ".join(f'"{word}"' for word in terms[:-1]) + f' "{terms[-1]}"*'
        in_issue = Issue.id.in_(
            sa.text("SELECT rowid FROM issues_fts WHERE issues_fts MATCH :fts").bindparams(
                fts=match.strip()
            )
        )
        in_comment = Issue.id.in_(
            sa.text(
                "SELECT comments.issue_id FROM comments_fts "
                "JOIN comments ON comments.id = comments_fts.rowid "
                "WHERE comments_fts MATCH :fts"
            ).bindparams(fts=match.strip())
        )
        return or_(in_issue, in_comment, *by_key)
    tsquery = func.to_tsquery(
        "simple", bindparam("tsq", " & ".join([*terms[:-1], terms[-1] + ":*"]))
    )
    in_text = func.to_tsvector("simple", Issue.summary + " " + Issue.description).op("@@")(tsquery)
    in_comment = Issue.id.in_(
        select(Comment.issue_id).where(func.to_tsvector("simple", Comment.body).op("@@")(tsquery))
    )
    by_reporter = and_(
        *(
            (Person.email + " " + func.coalesce(Person.name, "")).ilike(
                "%" + word.replace("\\", "").replace("%", "").replace("_", "") + "%"
            )
            for word in terms
        )
    )
    return or_(in_text, in_comment, by_reporter, *by_key)


def _counts(session: Session, column: Any, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(select(column, func.count()).where(column.in_(ids)).group_by(column))
    return {int(issue_id): int(count) for issue_id, count in rows}


# -- cursors -----------------------------------------------------------------------------------
#
# A cursor is where the last page ended (its sort value and id) and how it was sorted, encoded
# so that nobody builds one by hand; one given with another sort, or mangled, is refused.


def _cursor(query: IssueQuery, value: datetime, issue_id: int) -> str:
    data = json.dumps([query.sort, query.order, value.isoformat(), issue_id])
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def _after(column: Any, query: IssueQuery, cursor: str) -> ColumnElement[bool]:
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError(cursor)
        padded = cursor + "=" * (-len(cursor) % 4)
        sort, order, value, issue_id = json.loads(base64.urlsafe_b64decode(padded))
        at = datetime.fromisoformat(value).astimezone(UTC)
        if (sort, order) != (query.sort, query.order) or not isinstance(issue_id, int):
            raise ValueError(cursor)
        if not 0 <= issue_id < 2**31:  # an id any database's integer holds
            raise ValueError(cursor)
    except (
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
        binascii.Error,
        UnicodeDecodeError,
    ):
        raise BadInput("The cursor is not one this list gave: start again without it.") from None
    # A row value, not `column < at OR (column = at AND id < issue_id)`: SQLite plans that OR
    # as a union sorted in a temporary B-tree (a second at 100,000 issues, bench/desk.py),
    # a row value as a range of the index on (updated_at, id).
    if query.order == "desc":
        return tuple_(column, Issue.id) < tuple_(at, issue_id)
    return tuple_(column, Issue.id) > tuple_(at, issue_id)
