"""The gauges every process reports from the database: counts by status of credentials,
mailboxes, SMTP servers and the outbox, the outbox's depth, and whether the database answered.
Read at each scrape, so every worker reports the same totals; `serve`'s GET /metrics and a
worker's own metrics server (`mailgate worker --metrics-port`) add them to the process's counters
(`mailgate.metrics`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.store.vocabulary import OutboxStatus

log = structlog.get_logger(__name__)


_STATE = (
    ("mailgate_credentials", "Credentials by status.", "credentials"),
    ("mailgate_mailboxes", "Mailboxes by status.", "mailboxes"),
    ("mailgate_smtp_servers", "SMTP servers by status.", "smtp_servers"),
    ("mailgate_outbox_messages", "Outbox messages by status.", "outbox"),
)
_OUTBOX_DEPTH = (
    "mailgate_outbox_depth",
    "Outbox messages not sent yet, by status (pending: will be tried; dead: given up on).",
)


def state_metrics(session: Session) -> bytes:
    """What needs watching, as gauges: counts by status, read from the database (so every
    worker reports the same totals), and the outbox's depth."""
    lines: list[str] = []
    for name, help_text, table in _STATE:
        rows = session.execute(
            sa.text(f"SELECT status, count(*) FROM {table} GROUP BY status")  # noqa: S608 (constant names)
        ).all()
        lines += _gauge(name, help_text, sorted(rows))
        if table == "outbox":
            unsent = [(status, n) for status, n in sorted(rows) if status != OutboxStatus.SENT]
            # Both statuses always shown: an empty outbox is a depth of 0, not a missing series.
            depth = {OutboxStatus.PENDING.value: 0, OutboxStatus.DEAD.value: 0, **dict(unsent)}
            lines += _gauge(*_OUTBOX_DEPTH, sorted(depth.items()))
    return ("\n".join(lines) + "\n").encode()


def _gauge(name: str, help_text: str, counts: list[Any]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    return lines + [f'{name}{{status="{status}"}} {count}' for status, count in counts]


def _database_up(up: bool) -> bytes:
    return (
        "# HELP mailgate_database_up Whether the database answered this scrape (1) or not (0).\n"
        f"# TYPE mailgate_database_up gauge\nmailgate_database_up {int(up)}\n"
    ).encode()


async def state_text(ctx: Context) -> bytes:
    """`state_metrics`, or — while the database does not answer — only that it does not: the
    process's own counters are still worth a scrape."""
    try:
        state = await ctx.db.read(state_metrics)  # takes no write lock
    except (MailgateError, sa.exc.SQLAlchemyError, OSError) as error:
        log.warning("metrics: the database did not answer", error=str(error))
        return _database_up(False)
    return _database_up(True) + state
