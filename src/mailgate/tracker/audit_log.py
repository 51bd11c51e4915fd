"""Reading the audit log (`mailgate audit list`, the Audit log page); writing is
`mailgate.store.audit.record`, inside each change's own transaction."""

from __future__ import annotations

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
