"""The dashboard's short totals: open issues, notifications waiting to be sent and given up on,
messages held in quarantine. Counted in one read, for the page and the API alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import func, select

from mailgate.context import Context
from mailgate.store.models import Issue, OutboxMessage, Receipt
from mailgate.store.vocabulary import IssueStatus, OutboxStatus, ReceiptStatus


@dataclass(frozen=True)
class Totals:
    open_issues: int
    outbox_pending: int
    outbox_dead: int
    quarantined: int

    def as_json(self) -> dict[str, int]:
        return asdict(self)


async def totals(ctx: Context) -> Totals:
    async with ctx.db.session() as session:
        open_issues = await session.scalar(
            select(func.count()).select_from(Issue).where(Issue.status == IssueStatus.OPEN)
        )
        outbox = dict(
            (
                await session.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.DEAD)))
                    .group_by(OutboxMessage.status)
                )
            ).all()
        )
        quarantined = await session.scalar(
            select(func.count())
            .select_from(Receipt)
            .where(Receipt.status == ReceiptStatus.QUARANTINED)
        )
    return Totals(
        open_issues=int(open_issues or 0),
        outbox_pending=int(outbox.get(OutboxStatus.PENDING, 0)),
        outbox_dead=int(outbox.get(OutboxStatus.DEAD, 0)),
        quarantined=int(quarantined or 0),
    )
