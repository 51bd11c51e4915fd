"""The desk's events, as webhooks hear of them: written in the transaction of the change that
causes them, so an event is delivered if and only if its change was committed.

Cheap on the inbound pipeline's hot path: the active webhooks are looked up once per
transaction (`Unit.webhooks`), and an event nobody subscribes to costs nothing more. The same
event named twice in one transaction (the tracker's `add_comment` and the desk that called it)
is queued once.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, select

from mailgate.store.models import Comment, Issue, Person, Project
from mailgate.store.vocabulary import WebhookEvent
from mailgate.store.webhooks import Subscriptions, publish, subscriptions
from mailgate.unit import Unit

# A comment's body is a mail's text: a receiver wants the gist, not megabytes (the Standard
# Webhooks spec suggests payloads under 20 KB; the issue is a link away).
MAX_BODY = 16_000

_ISSUE = (
    select(
        Issue.id,
        Issue.number,
        Issue.summary,
        Issue.status,
        Project.key.label("project"),
        Person.email.label("reporter"),
    )
    .join(Project, Project.id == Issue.project_id)
    .join(Person, Person.id == Issue.reporter_id)
    .where(Issue.id == bindparam("issue"))
)
_COMMENT = (
    select(Comment.id, Comment.body, Comment.created_at, Person.email.label("author"))
    .join(Person, Person.id == Comment.author_id)
    .where(Comment.id == bindparam("comment"))
)


def _known(unit: Unit) -> Subscriptions:
    if unit.webhooks is None:
        unit.webhooks = subscriptions(unit.session)
    return unit.webhooks


def issue_event(
    unit: Unit,
    event: WebhookEvent,
    issue_id: int,
    *,
    comment_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Queue `event` about an issue (and one of its comments) for every webhook that wants it;
    `detail` adds fields to the payload's data (a status change's `previous_status`)."""
    known = _known(unit)
    if not known.wanting(event):
        return
    once = json.dumps([event, issue_id, comment_id, detail], sort_keys=True, default=str)
    if once in known.queued:
        return
    db = unit.session.connection()
    issue = db.execute(_ISSUE, {"issue": issue_id}).first()
    if issue is None:
        return
    key = f"{issue.project}-{issue.number}"
    data: dict[str, Any] = {
        "issue": {
            "key": key,
            "summary": issue.summary,
            "status": issue.status,
            "reporter": issue.reporter,
            "project": issue.project,
            "url": f"{unit.base_url.rstrip('/')}/issues/{key}" if unit.base_url else None,
        }
    }
    if comment_id is not None:
        comment = db.execute(_COMMENT, {"comment": comment_id}).first()
        if comment is not None:
            body = comment.body or ""
            data["comment"] = {
                "id": comment.id,
                "author": comment.author,
                "body": body[:MAX_BODY],
                "body_truncated": len(body) > MAX_BODY,
                "created_at": comment.created_at.isoformat(),
            }
    data.update(detail or {})
    publish(unit.session, unit.now(), event, data, known)
    known.queued.add(once)


def message_quarantined(
    unit: Unit,
    receipt_id: int,
    *,
    mailbox: str | None,
    sender: str | None,
    reason: str | None,
    project: str | None = None,
    origin: str | None = None,
) -> None:
    """`message.quarantined`: a received message is held for an agent (or the admin)."""
    known = _known(unit)
    if not known.wanting(WebhookEvent.MESSAGE_QUARANTINED):
        return
    data = {
        "receipt_id": receipt_id,
        "mailbox": mailbox,
        "origin": origin,
        "sender": sender,
        "project": project,
        "reason": reason,
    }
    publish(unit.session, unit.now(), WebhookEvent.MESSAGE_QUARANTINED, data, known)
