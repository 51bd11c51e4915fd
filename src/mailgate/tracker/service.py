"""The built-in tracker's service functions: projects, issues, comments, people, attachments.

Functions that take a `Unit` (`mailgate.unit`: the session, the clock, the transaction's
caches) or a `Session` run inside the caller's transaction (the inbound pipeline writes an
issue, its attachments and the message's receipt in one); the others open their own. What
people see of an issue, and what an agent does to one, is in `issues`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.mail.smtp_servers import check_address
from mailgate.store import audit
from mailgate.store.models import (
    Attachment,
    Blob,
    Comment,
    Issue,
    Person,
    Project,
    SmtpServer,
    ThreadMessage,
    Watcher,
)
from mailgate.store.vocabulary import Direction, IssueStatus, PersonKind, WebhookEvent
from mailgate.tracker.events import issue_event
from mailgate.unit import Unit


def table_of(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


PEOPLE = table_of(Person)
PROJECTS = table_of(Project)
ISSUES = table_of(Issue)
COMMENTS = table_of(Comment)
WATCHERS = table_of(Watcher)
BLOBS = table_of(Blob)
ATTACHMENTS = table_of(Attachment)
THREAD = table_of(ThreadMessage)

# Two characters at least: an issue key is [A-Z][A-Z0-9_]+-[0-9]+ (the keys found in subjects).
KEY_RE = re.compile(r"[A-Z][A-Z0-9_]{1,49}")
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


async def add_project(
    ctx: Context,
    key: str,
    name: str,
    *,
    smtp: str | None = None,
    notify: bool = True,
    default_reporter: str | None = None,
) -> Project:
    """A new project (all checked before anything is stored)."""
    reporter = _default_reporter(default_reporter) if default_reporter is not None else None
    if not KEY_RE.fullmatch(key):
        raise BadInput(
            f"Project key {key!r} is not valid: use 2 to 50 capital letters, digits and _, "
            "starting with a letter (e.g. HELP)."
        )
    if not name.strip():
        raise BadInput("The project name is empty: give --name.")

    def add(session: Session) -> Project:
        if find_project(session, key) is not None:
            raise BadInput(
                f"A project {key} already exists: change it with `mailgate project set {key}`."
            )
        _check_smtp(session, smtp)
        now = ctx.clock()
        project = Project(
            key=key,
            name=" ".join(name.split())[:200],
            smtp=smtp,
            notify=notify,
            default_reporter=reporter,
            next_number=1,
            created_at=now,
        )
        session.add(project)
        if session.get_bind().dialect.name == "postgresql":
            session.flush()  # its id names its sequence of issue numbers
            session.execute(sa.text(f"CREATE SEQUENCE {number_sequence(project.id)}"))
        detail = f"SMTP server {smtp}" if smtp else None
        audit.record(session, now, "project.add", key, detail)
        return project

    return await ctx.db.run(add)


async def set_project(
    ctx: Context,
    key: str,
    *,
    name: str | None = None,
    smtp: str | None = None,
    notify: bool | None = None,
    default_reporter: str | None = None,
) -> Project:
    """Change a project; only what is given changes (checked before anything is stored)."""
    reporter = _default_reporter(default_reporter) if default_reporter is not None else None

    def change(session: Session) -> Project:
        project = get_project(session, key)
        before = project_view(project)
        if name is not None:
            project.name = " ".join(name.split())[:200] or project.name
        if smtp is not None:
            _check_smtp(session, smtp or None)
            project.smtp = smtp or None
        if notify is not None:
            project.notify = notify
        if default_reporter is not None:
            project.default_reporter = reporter
        changed = [
            field for field, value in project_view(project).items() if before[field] != value
        ]
        if changed:
            audit.record(session, ctx.clock(), "project.set", key, ", ".join(changed))
        return project

    return await ctx.db.run(change)


def _check_smtp(session: Session, name: str | None) -> None:
    """The SMTP server a project names exists: a typo would leave its notifications unsent."""
    if (
        name is not None
        and session.scalar(select(SmtpServer.id).where(SmtpServer.name == name)) is None
    ):
        raise NotFound(f"No SMTP server {name!r}: `mailgate smtp list` shows them.")


def _default_reporter(given: str) -> str | None:
    """The reporter of mail from unknown senders (`--no-create-customers`): an address that
    notifications can go to; "" takes it away."""
    if not given.strip(" "):
        return None
    return check_address(given, "--default-reporter")


def find_project(session: Session, key: str) -> Project | None:
    return (session.scalars(select(Project).where(Project.key == key))).first()


def get_project(session: Session, key: str) -> Project:
    project = find_project(session, key)
    if project is None:
        raise NotFound(
            f"No project {key!r}: create it with `mailgate project add {key} --name NAME`."
        )
    return project


async def list_projects(ctx: Context) -> list[Project]:
    return await ctx.db.run(
        lambda session: list(session.scalars(select(Project).order_by(Project.key)))
    )


# -- people ----------------------------------------------------------------------------------------
#
# The write functions below are the inbound pipeline's hot path: Core statements built once and
# executed with parameters on the session's connection (no ORM unit of work), and the
# transaction's cache of people by address (`Unit.people`).

_PERSON_BY_EMAIL = select(PEOPLE.c.id, PEOPLE.c.name).where(PEOPLE.c.email == bindparam("email"))
_PERSON_KIND = select(PEOPLE.c.id, PEOPLE.c.kind).where(PEOPLE.c.email == bindparam("email"))
_PERSON_NAMED = (
    update(PEOPLE).where(PEOPLE.c.id == bindparam("person")).values(name=bindparam("new_name"))
)


def project_view(project: Project) -> dict[str, Any]:
    """A project as the CLI (and the pages) show it."""
    return {
        "key": project.key,
        "name": project.name,
        "smtp": project.smtp,
        "notify": project.notify,
        "default_reporter": project.default_reporter,
    }


def person(
    unit: Unit, email: str, name: str | None = None, kind: PersonKind = PersonKind.CUSTOMER
) -> int:
    """The id of the person with this address, created (as a customer) when new."""
    address = email.strip().lower()
    known = unit.people
    if address in known:
        return known[address]
    db = unit.session.connection()
    row = db.execute(_PERSON_BY_EMAIL, {"email": address}).first()
    if row is None:
        values = {"email": address, "name": name, "kind": kind, "created_at": unit.now()}
        created = db.execute(_or_nothing(db, PEOPLE).returning(PEOPLE.c.id), values).scalar()
        if created is None:
            # Another transaction added them meanwhile (PostgreSQL: two workers, one new
            # sender); the database waited for it, and its row is there to read now.
            created = db.execute(_PERSON_BY_EMAIL, {"email": address}).one().id
        person_id = int(created)
    else:
        person_id = int(row.id)
        if name and not row.name:
            db.execute(_PERSON_NAMED, {"person": person_id, "new_name": name})
    known[address] = person_id
    return person_id


def person_exists(session: Session, address: str) -> bool:
    found = session.connection().execute(_PERSON_BY_EMAIL, {"email": address.strip().lower()})
    return found.first() is not None


def watch(session: Session, issue: IssueRef, person_id: int) -> None:
    if issue.reporter_id != person_id:
        _insert_new(session, WATCHERS, issue_id=issue.id, person_id=person_id)


_INSERT_NEW: dict[tuple[str, str], sa.Insert] = {}


def _insert_new(session: Session, table: sa.Table, **values: Any) -> None:
    """INSERT unless a row with the same unique key exists (the database decides: no race)."""
    db = session.connection()
    db.execute(_or_nothing(db, table), values)


def _or_nothing(db: sa.Connection, table: sa.Table) -> sa.Insert:
    """INSERT … ON CONFLICT DO NOTHING into `table`, in the connection's dialect."""
    key = (table.name, db.dialect.name)
    if key not in _INSERT_NEW:
        if db.dialect.name == "sqlite":
            from sqlalchemy.dialects import sqlite

            _INSERT_NEW[key] = sqlite.insert(table).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects import postgresql

            _INSERT_NEW[key] = postgresql.insert(table).on_conflict_do_nothing()
    return _INSERT_NEW[key]


# -- issues and comments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueRef:
    """An issue as the write functions need it."""

    id: int
    project_id: int
    number: int
    reporter_id: int

    @classmethod
    def of(cls, issue: Issue) -> IssueRef:
        return cls(issue.id, issue.project_id, issue.number, issue.reporter_id)


_ISSUE_REF = (ISSUES.c.id, ISSUES.c.project_id, ISSUES.c.number, ISSUES.c.reporter_id)
_NEXT_NUMBER = (
    update(PROJECTS)
    .where(PROJECTS.c.id == bindparam("project"))
    .values(next_number=PROJECTS.c.next_number + 1)
    .returning(PROJECTS.c.next_number)
)
# PostgreSQL: the project's own sequence, if it has one (projects made by `add_project`, or
# there at migration 0013); else NULL, and the number comes from the project row.
_NEXT_IN_SEQUENCE = sa.text("SELECT nextval(to_regclass(:sequence))")
_NEW_ISSUE = insert(ISSUES).returning(ISSUES.c.id)
_NEW_COMMENT = insert(COMMENTS).returning(COMMENTS.c.id)
_NEW_ATTACHMENT = insert(ATTACHMENTS)
_ISSUE_UPDATED = (
    update(ISSUES).where(ISSUES.c.id == bindparam("issue")).values(updated_at=bindparam("now"))
)
_THREAD_ISSUE = select(THREAD.c.issue_id).where(
    THREAD.c.project_id == bindparam("project"), THREAD.c.message_id == bindparam("message_id")
)
_THREAD_ISSUES = select(THREAD.c.message_id, THREAD.c.issue_id).where(
    THREAD.c.project_id == bindparam("project"),
    THREAD.c.message_id.in_(bindparam("message_ids", expanding=True)),
)
_ISSUE_BY_ID = select(*_ISSUE_REF).where(ISSUES.c.id == bindparam("id"))
_ISSUE_BY_KEY = (
    select(*_ISSUE_REF)
    .join(PROJECTS, PROJECTS.c.id == ISSUES.c.project_id)
    .where(PROJECTS.c.key == bindparam("key"), ISSUES.c.number == bindparam("number"))
)
_WATCHING = select(WATCHERS.c.person_id).where(
    WATCHERS.c.issue_id == bindparam("issue"), WATCHERS.c.person_id == bindparam("person")
)


def create_issue(
    unit: Unit,
    project_id: int,
    reporter_id: int,
    summary: str,
    description: str,
    *,
    source_message_id: str | None = None,
    receipt_id: int | None = None,
    sender_authentication: str | None = None,
    attachments: Sequence[NewAttachment] = (),
    watcher_ids: Sequence[int] = (),
) -> IssueRef:
    session = unit.session
    db = session.connection()
    number = _next_number(db, project_id)
    now = unit.now()
    issue_id = db.execute(
        _NEW_ISSUE,
        {
            "project_id": project_id,
            "number": number,
            "summary": _one_line(summary) or "(no subject)",
            "description": description,
            "reporter_id": reporter_id,
            "status": IssueStatus.OPEN,
            "source_message_id": source_message_id,
            "receipt_id": receipt_id,
            "sender_authentication": sender_authentication,
            "created_at": now,
            "updated_at": now,
        },
    ).scalar_one()
    issue = IssueRef(issue_id, project_id, number, reporter_id)
    if source_message_id:
        remember_message(session, project_id, source_message_id, issue_id, Direction.IN)
    _attach(session, issue_id, None, attachments)
    for watcher in watcher_ids:
        watch(session, issue, watcher)
    issue_event(unit, WebhookEvent.ISSUE_CREATED, issue_id)
    return issue


def number_sequence(project_id: int) -> str:
    """The PostgreSQL sequence of a project's issue numbers."""
    return f"issue_numbers_{int(project_id)}"


def _next_number(db: sa.Connection, project_id: int) -> int:
    """The project's next issue number.

    SQLite has one writer at a time: the number comes from the project row, incremented in the
    caller's transaction. On PostgreSQL that would lock the row until the whole batch commits,
    and a second worker writing an issue of the same project would wait for it; the project's
    sequence hands out numbers without a lock instead. A number taken by a transaction that is
    rolled back is not given again: the numbers may have gaps (HELP-4, then HELP-6)."""
    if db.dialect.name == "postgresql":
        number = db.execute(_NEXT_IN_SEQUENCE, {"sequence": number_sequence(project_id)})
        taken = number.scalar()
        if taken is not None:
            return int(taken)
    return int(db.execute(_NEXT_NUMBER, {"project": project_id}).scalar_one()) - 1


def add_comment(
    unit: Unit,
    issue: IssueRef,
    author_id: int,
    body: str,
    *,
    source_message_id: str | None = None,
    receipt_id: int | None = None,
    sender_authentication: str | None = None,
    attachments: Sequence[NewAttachment] = (),
) -> int:
    session = unit.session
    db = session.connection()
    now = unit.now()
    values = {
        "issue_id": issue.id,
        "author_id": author_id,
        "body": body,
        "source_message_id": source_message_id,
        "receipt_id": receipt_id,
        "sender_authentication": sender_authentication,
        "created_at": now,
    }
    comment_id = int(db.execute(_NEW_COMMENT, values).scalar_one())
    if source_message_id:
        # The issue may be in another project than the mailbox's: it is indexed there.
        remember_message(session, issue.project_id, source_message_id, issue.id, Direction.IN)
    _attach(session, issue.id, comment_id, attachments)
    db.execute(_ISSUE_UPDATED, {"issue": issue.id, "now": now})
    issue_event(unit, WebhookEvent.COMMENT_ADDED, issue.id, comment_id=comment_id)
    return comment_id


def _attach(
    session: Session,
    issue_id: int,
    comment_id: int | None,
    attachments: Sequence[NewAttachment],
) -> None:
    if not attachments:
        return
    rows = []
    for item in attachments:
        digest = hashlib.sha256(item.data).hexdigest()
        keep_blob(session, digest, item.data)
        rows.append(
            {
                "issue_id": issue_id,
                "comment_id": comment_id,
                "sha256": digest,
                "filename": item.filename,
                "content_type": item.content_type,
                "size": len(item.data),
                "inline": item.inline,
                "content_id": item.content_id,
            }
        )
    session.connection().execute(_NEW_ATTACHMENT, rows)


def keep_blob(session: Session, digest: str, data: bytes) -> None:
    """Store bytes under their SHA-256 (once: the same bytes again are not stored twice)."""
    _insert_new(session, BLOBS, sha256=digest, size=len(data), data=data)


_BLOB = select(BLOBS.c.data).where(BLOBS.c.sha256 == bindparam("sha256"))


def blob(session: Session, digest: str) -> bytes | None:
    if not digest:
        return None
    return session.connection().execute(_BLOB, {"sha256": digest}).scalar()


def remember_message(
    session: Session, project_id: int, message_id: str, issue_id: int, direction: Direction
) -> None:
    """Index a Message-ID for threading (once per project)."""
    _insert_new(
        session,
        THREAD,
        project_id=project_id,
        message_id=message_id[:998],
        issue_id=issue_id,
        direction=direction,
    )


def thread_issue(session: Session, project_id: int, message_id: str) -> int | None:
    """The issue a Message-ID was indexed for in a project."""
    found = session.connection().execute(
        _THREAD_ISSUE, {"project": project_id, "message_id": message_id}
    )
    return found.scalar()


def issue_by_message_id(
    session: Session, project_id: int, message_ids: list[str]
) -> IssueRef | None:
    if not message_ids:
        return None
    db = session.connection()
    found = db.execute(_THREAD_ISSUES, {"project": project_id, "message_ids": message_ids}).all()
    if not found:
        return None
    # The most specific match: In-Reply-To first, then References from the newest.
    order = {mid: i for i, mid in enumerate(message_ids)}
    best = min(found, key=lambda t: order.get(t.message_id, len(order)))
    row = db.execute(_ISSUE_BY_ID, {"id": best.issue_id}).first()
    return IssueRef(*row) if row else None


def _split_key(key: str) -> tuple[str, int] | None:
    """(project key, number) of an issue key, or None when no issue can have it: anyone may
    write "HELP-99999999999999999999" in a subject, and a number past the column's range is
    an error of the database's (SQLite: OverflowError), not a miss."""
    match = ISSUE_KEY_RE.fullmatch(key)
    digits = match.group(2).lstrip("0") if match else ""
    if not match or len(digits) > 10 or int(digits or "0") >= 2**31:
        return None
    return match.group(1), int(digits or "0")


def issue_ref_by_key(session: Session, key: str) -> IssueRef | None:
    split = _split_key(key)
    if split is None:
        return None
    found = session.connection().execute(_ISSUE_BY_KEY, {"key": split[0], "number": split[1]})
    row = found.first()
    return IssueRef(*row) if row else None


def is_participant(session: Session, issue: IssueRef, address: str) -> bool:
    """The address is the issue's reporter's, a watcher's or an agent's (agents may answer
    any issue by mail)."""
    db = session.connection()
    person = db.execute(_PERSON_KIND, {"email": address.strip().lower()}).first()
    if person is None:
        return False
    if person.id == issue.reporter_id or person.kind == PersonKind.AGENT:
        return True
    return db.execute(_WATCHING, {"issue": issue.id, "person": person.id}).first() is not None


def issue_ref_by_id(session: Session, issue_id: int) -> IssueRef | None:
    row = session.connection().execute(_ISSUE_BY_ID, {"id": issue_id}).first()
    return IssueRef(*row) if row else None


def issue_by_key(session: Session, key: str) -> tuple[Project, Issue] | None:
    split = _split_key(key)
    if split is None:
        return None
    project = find_project(session, split[0])
    if project is None:
        return None
    issue = (
        session.scalars(
            select(Issue).where(Issue.project_id == project.id, Issue.number == split[1])
        )
    ).first()
    return (project, issue) if issue else None


def get_issue(session: Session, key: str) -> tuple[Project, Issue]:
    found = issue_by_key(session, key)
    if found is None:
        raise NotFound(f"No issue {key!r}: `mailgate issue list` shows the issues there are.")
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
