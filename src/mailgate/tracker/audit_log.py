"""Reading the audit log (`mailgate audit list`, the Audit log page); writing is
`mailgate.store.audit.record`, inside each change's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store import audit


async def audit_log(
    ctx: Context, *, since: datetime | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The newest events first, as JSON-ready dicts."""

    def read(session: Session) -> list[dict[str, Any]]:
        return [audit.as_json(e) for e in audit.events(session, since=since, limit=limit)]

    return await ctx.db.run(read)


@dataclass(frozen=True)
class AuditPage:
    """One page of the log: its events (newest first) and the cursor of the next, older page
    (None on the last)."""

    events: list[dict[str, Any]]
    next_before: int | None


async def audit_page(
    ctx: Context,
    *,
    action: str | None = None,
    since: datetime | None = None,
    before: int | None = None,
    size: int = 100,
) -> AuditPage:
    """A page of the log for the Audit log page: actions starting with `action`, from `since`,
    older than the event `before`."""

    def read(session: Session) -> AuditPage:
        found = audit.events(session, since=since, limit=size + 1, action=action, before=before)
        shown = found[:size]
        more = len(found) > size and bool(shown)
        return AuditPage([audit.as_json(e) for e in shown], shown[-1].id if more else None)

    return await ctx.db.run(read)
