"""Quarantined messages: listed with their reason, retried once the cause is fixed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.inbound.handle import Destination, handle
from mailgate.inbound.parse import parse_message
from mailgate.inbound.route import RouteOptions
from mailgate.mail.mailboxes import destination_of
from mailgate.store.models import Mailbox, Receipt
from mailgate.tracker import notify, service


async def list_quarantine(ctx: Context) -> list[dict[str, Any]]:
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(Receipt, Mailbox.name)
                .outerjoin(Mailbox, Receipt.mailbox_id == Mailbox.id)
                .where(Receipt.status == "quarantined")
                .order_by(Receipt.id)
            )
        ).all()
    return [
        {
            "id": receipt.id,
            "mailbox": name,
            "origin": receipt.origin,
            "project": receipt.project,
            "message_id": receipt.message_id,
            "size": receipt.size,
            "reason": receipt.reason,
            "received_at": receipt.received_at.isoformat(),
            "kept": bool(receipt.sha256),
        }
        for receipt, name in rows
    ]


async def retry(ctx: Context, receipt_id: int) -> dict[str, Any]:
    """Run a quarantined message through the pipeline again; its receipt shows the outcome."""

    def run(session: Session) -> dict[str, Any]:
        notify.bind(session, ctx)
        receipt = session.get(Receipt, receipt_id)
        if receipt is None or receipt.status != "quarantined":
            raise NotFound(
                f"No quarantined message {receipt_id}: `mailgate quarantine list` shows them."
            )
        mailbox = session.get(Mailbox, receipt.mailbox_id) if receipt.mailbox_id else None
        raw = service.blob(session, receipt.sha256)
        if raw is None:
            if mailbox is None:
                raise BadInput(f"Message {receipt_id} was never fetched, so it cannot be retried.")
            if receipt.size > mailbox.max_message_bytes:
                raise BadInput(
                    f"Message {receipt_id} is {receipt.size} bytes, over mailbox {mailbox.name}'s "
                    "limit: raise it with `mailgate mailbox set NAME --max-message-bytes N`, then "
                    "retry."
                )
            mailbox.quarantined = max(0, mailbox.quarantined - 1)
            if receipt.uidl is not None:
                # POP3: without a receipt the UIDL is new again and fetched at the next poll.
                session.delete(receipt)
            else:
                # IMAP: the next poll fetches this UID before new mail (the UID state stays).
                receipt.status = "refetch"
                receipt.reason = "to be fetched again at the next poll"
            return {
                "id": receipt_id,
                "status": "refetch",
                "reason": "fetched again at the next poll",
            }
        destination = (
            destination_of(mailbox)
            if mailbox is not None
            else Destination(project=receipt.project or "", options=RouteOptions())
        )
        with session.begin_nested():
            outcome = handle(
                session, receipt.id, receipt.received_at, parse_message(raw), destination
            )
            receipt.status, receipt.reason, receipt.issue_id = (
                outcome.status,
                outcome.reason,
                outcome.issue_id,
            )
            receipt.post_action = outcome.post_action
            if outcome.project:
                receipt.project, receipt.sender = (
                    outcome.project,
                    (outcome.sender or "")[:320] or None,
                )
            if outcome.forward_to and outcome.project:
                notify.forward(session, outcome.project, raw, outcome.forward_to, outcome.reason)
        if receipt.status != "quarantined" and mailbox is not None:
            mailbox.quarantined = max(0, mailbox.quarantined - 1)
            # The post-action that was held back runs at the next poll.
            receipt.post_action_done_at = None
        return {
            "id": receipt.id,
            "status": receipt.status,
            "reason": receipt.reason,
            "issue": receipt.issue_id,
        }

    return await ctx.db.run(run)
