"""The audit log: who did what and when.

Service functions call `record` inside the transaction of the change they make, so the log and
the change are written together or not at all. The actor comes from `mailgate.actor` (set where
a request or a command enters). A detail names what changed, never a secret's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from mailgate import actor
from mailgate.store.models import AuditEvent


def record(
    session: Session,
    at: datetime,
    action: str,
    subject: str | None = None,
    detail: str | None = None,
) -> None:
    """Add one event to the caller's transaction."""
    who = actor.current()
    session.add(
        AuditEvent(
            at=at,
            actor=who.name[:400],
            address=who.address,
            action=action,
            subject=subject[:400] if subject else None,
            detail=detail,
        )
    )


def events(
    session: Session,
    *,
    since: datetime | None = None,
    limit: int = 1000,
    action: str | None = None,
    before: int | None = None,
) -> Sequence[AuditEvent]:
    """The newest events first, at most `limit`: only actions starting with `action` if given,
    and only those listed after the event `before` (a page's cursor: its last event's id)."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if before is not None:
        cursor = session.get(AuditEvent, before)
        if cursor is not None:  # after it in the order above: older, or as old with a lower id
            query = query.where(
                or_(
                    AuditEvent.at < cursor.at,
                    and_(AuditEvent.at == cursor.at, AuditEvent.id < cursor.id),
                )
            )
    return session.scalars(query).all()


def as_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "address": event.address,
        "action": event.action,
        "subject": event.subject,
        "detail": event.detail,
    }
