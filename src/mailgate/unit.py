"""The unit of work: what one write transaction of the tracker, the inbound handler and the
notifier works with — its session, the process's clock, the admin's templates folder, and what
the transaction has looked up once (people, projects, SMTP servers, our own addresses).

One `Unit` per transaction, made by `Unit.run`; nothing of it outlives the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from mailgate.context import Clock, Context
from mailgate.store.models import Project, SmtpServer
from mailgate.store.webhooks import Subscriptions

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Unit:
    """One transaction's session, clock and caches (a batch of messages shares them)."""

    session: Session
    clock: Clock
    # MAILGATE_HOME/templates: the admin's templates, preferred to the built-in ones.
    templates: Path | None = None
    people: dict[str, int] = field(default_factory=dict)  # address → person id
    projects: dict[str, Project | None] = field(default_factory=dict)  # key → project
    smtp_servers: dict[str, SmtpServer | None] = field(default_factory=dict)  # project key →
    own_addresses: set[str] | None = None  # see `tracker.notify.own_addresses`
    base_url: str = ""  # MAILGATE_BASE_URL: the links in webhook payloads
    webhooks: Subscriptions | None = None  # looked up at the first event (`tracker.events`)

    @classmethod
    async def run(
        cls,
        ctx: Context,
        work: Callable[Concatenate[Unit, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`work(unit, *args)` in one transaction (`Database.run`), with a unit of its own."""

        def transaction(session: Session, /, *args: P.args, **kwargs: P.kwargs) -> T:
            templates = ctx.settings.home / "templates"
            unit = cls(session, ctx.clock, templates, base_url=ctx.settings.base_url)
            return work(unit, *args, **kwargs)

        return await ctx.db.run(transaction, *args, **kwargs)

    def now(self) -> datetime:
        return self.clock()

    def reset(self) -> None:
        """Forget what was looked up: after a savepoint rolled back, ids written inside it may
        no longer exist."""
        self.people.clear()
        self.projects.clear()
        self.smtp_servers.clear()
        self.own_addresses = None
        self.webhooks = None
