"""What the Projects page shows of each project besides its settings: which mailboxes feed it
(their handler's project) and which SMTP server answers for it, by the rule the notifier
follows (`tracker/notify.py`'s `smtp_for`), so the page never promises what the outbox won't do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import Issue, Mailbox, Project
from mailgate.store.vocabulary import IssueStatus
from mailgate.tracker.notify import smtp_for
from mailgate.tracker.service import get_project, project_view
from mailgate.unit import Unit


@dataclass(frozen=True)
class ProjectOverview:
    """A project, the mailboxes that feed it and the SMTP server its notifications go through."""

    key: str
    name: str
    smtp: str | None  # the server the admin chose, None for the default
    notify: bool
    default_reporter: str | None
    mailboxes: list[str]  # by name
    answering: str | None  # the server notifications go through; None: none will be sent
    open_issues: int

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "smtp": self.smtp,
            "notify": self.notify,
            "default_reporter": self.default_reporter,
            "mailboxes": self.mailboxes,
            "answering": self.answering,
            "open_issues": self.open_issues,
        }


def _overviews(session: Session, ctx: Context, projects: list[Project]) -> list[ProjectOverview]:
    feeding: dict[str, list[str]] = {}
    for name, key in session.execute(select(Mailbox.name, Mailbox.project).order_by(Mailbox.name)):
        feeding.setdefault(key, []).append(name)
    open_issues = dict(
        session.execute(
            select(Issue.project_id, func.count())
            .where(Issue.status == IssueStatus.OPEN)
            .group_by(Issue.project_id)
        ).all()
    )
    unit = Unit(session, ctx.clock)
    found = []
    for project in projects:
        server = smtp_for(unit, project)
        found.append(
            ProjectOverview(
                **project_view(project),
                mailboxes=feeding.get(project.key, []),
                answering=server.name if server else None,
                open_issues=int(open_issues.get(project.id, 0)),
            )
        )
    return found


async def project_overviews(ctx: Context) -> list[ProjectOverview]:
    """Every project by key, with its mailboxes and its SMTP server."""

    def read(session: Session) -> list[ProjectOverview]:
        projects = list(session.scalars(select(Project).order_by(Project.key)))
        return _overviews(session, ctx, projects)

    return await ctx.db.run(read)


async def project_overview(ctx: Context, key: str) -> ProjectOverview:
    """One project (NotFound when there is none with this key)."""

    def read(session: Session) -> ProjectOverview:
        return _overviews(session, ctx, [get_project(session, key)])[0]

    return await ctx.db.run(read)
