"""What a committed batch of messages tells the operator: the metrics it moves and the line it
logs for each message taken (`pipeline.take_many` calls these once the commit is done)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailgate import metrics
from mailgate.store.vocabulary import ReceiptStatus
from mailgate.tracker.service import ISSUES, PROJECTS

log = structlog.get_logger("mailgate.inbound.pipeline")  # the lines of the pipeline

_ISSUE_KEYS = (
    select(ISSUES.c.id, PROJECTS.c.key, ISSUES.c.number)
    .join(PROJECTS, PROJECTS.c.id == ISSUES.c.project_id)
    .where(ISSUES.c.id.in_(bindparam("ids", expanding=True)))
)
_BECAME_ISSUE = frozenset({ReceiptStatus.CREATED, ReceiptStatus.COMMENTED})


def issue_keys(session: Session, issue_ids: Iterable[int | None]) -> dict[int, str]:
    """The keys (SUP-7) of these issues, read in the batch's transaction — only when a line
    will show them (one statement a batch)."""
    ids = sorted({issue_id for issue_id in issue_ids if issue_id is not None})
    if not ids or not log.is_enabled_for(logging.INFO):
        return {}
    rows = session.execute(_ISSUE_KEYS, {"ids": ids})
    return {issue_id: f"{key}-{number}" for issue_id, key, number in rows}


def taken(
    mailbox: str,
    receipt_id: int,
    *,
    message_id: str | None,
    status: str,
    issue: str | None,
    waited: timedelta | None,
) -> None:
    """One message taken for the first time, committed: counted (under its mailbox's name, ""
    for an ingested file), its latency observed when it became an issue or comment and the
    mailbox loop said when it found it (`waited`), and logged."""
    metrics.message_taken(mailbox, quarantined=status == ReceiptStatus.QUARANTINED)
    if waited is not None and status in _BECAME_ISSUE:
        metrics.mail_to_issue(waited.total_seconds())
    where = {"mailbox": mailbox} if mailbox else {}
    log.info(
        "message taken",
        **where,
        message=receipt_id,
        message_id=message_id,
        status=status,
        issue=issue,
    )
