"""Queueing webhook deliveries: one `WebhookDelivery` row per webhook that wants an event,
written in the transaction of the change that causes it, so an event is delivered if and only
if its change was committed (`outbound/webhooks.py` sends the rows).

The lowest layer that can do it, so that every layer above may queue its own events: the
tracker's (`tracker/events.py`), the inbound pipeline's quarantine, the token keeper's
credential statuses. The payload follows the Standard Webhooks recommendation
(https://www.standardwebhooks.com): `{"type": EVENT, "timestamp": ISO 8601, "data": {...}}`,
serialized once and stored as sent, since the signature covers the exact bytes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from mailgate.store.models import Credential, Integration, Webhook, WebhookDelivery
from mailgate.store.vocabulary import DeliveryStatus, WebhookEvent

# "Send test event": a delivery of its own type, sent to one webhook whatever it subscribes to.
PING = "ping"
# "Unique identifier … the same no matter how many times a webhook that has failed is retried";
# never holding a '.', which separates the parts of the signed content.
DELIVERY_ID_PREFIX = "msg_"

_WEBHOOKS = cast(sa.Table, Webhook.__table__)
_DELIVERIES = cast(sa.Table, WebhookDelivery.__table__)
_ACTIVE = select(_WEBHOOKS.c.id, _WEBHOOKS.c.events).where(_WEBHOOKS.c.active.is_(True))
_NEW_DELIVERY = insert(_DELIVERIES)
_CREDENTIAL = (
    select(
        Credential.id,
        Credential.account,
        Credential.status,
        Credential.last_error,
        Integration.name,
    )
    .join(Integration, Integration.id == Credential.integration_id)
    .where(Credential.id == bindparam("credential"))
)


@dataclass(frozen=True)
class Subscriber:
    """An active webhook and the events it wants."""

    webhook_id: int
    events: frozenset[str]


@dataclass
class Subscriptions:
    """What one transaction knows of the webhooks: looked up once, at its first event (the
    inbound pipeline takes many messages in one transaction), and the events it queued already
    (the same event named twice in one transaction is sent once)."""

    subscribers: tuple[Subscriber, ...]
    queued: set[str] = field(default_factory=set)

    def wanting(self, event: str) -> list[int]:
        return [s.webhook_id for s in self.subscribers if event in s.events]


def subscriptions(session: Session) -> Subscriptions:
    """The active webhooks (one small query)."""
    rows = session.connection().execute(_ACTIVE).all()
    return Subscriptions(tuple(Subscriber(row.id, frozenset(row.events or ())) for row in rows))


def new_delivery_id() -> str:
    return DELIVERY_ID_PREFIX + secrets.token_urlsafe(18)


def iso(moment: datetime) -> str:
    """An instant as the payloads write it: UTC, ISO 8601, with a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(event: str, now: datetime, data: Mapping[str, Any]) -> str:
    """The body every receiver of the event gets, byte for byte."""
    envelope = {"type": event, "timestamp": iso(now), "data": dict(data)}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


def enqueue(
    session: Session,
    now: datetime,
    event: str,
    data: Mapping[str, Any],
    webhook_ids: Sequence[int],
) -> list[str]:
    """One pending delivery of `event` per webhook in `webhook_ids`, in the caller's
    transaction; returns their delivery ids."""
    if not webhook_ids:
        return []
    body = payload(event, now, data)
    ids = [new_delivery_id() for _ in webhook_ids]
    rows = [
        {
            "delivery_id": delivery_id,
            "webhook_id": webhook_id,
            "event": event,
            "payload": body,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "response_status": None,
            "lease_owner": None,
            "lease_until": None,
            "created_at": now,
            "delivered_at": None,
        }
        for delivery_id, webhook_id in zip(ids, webhook_ids, strict=True)
    ]
    db = session.connection()
    for row in rows:  # one row at a time: the usual case, and cheaper than executemany's
        db.execute(_NEW_DELIVERY, row)
    return ids


def publish(
    session: Session,
    now: datetime,
    event: WebhookEvent,
    data: Mapping[str, Any],
    known: Subscriptions | None = None,
) -> list[str]:
    """Queue `event` for every active webhook that subscribes to it (looked up now unless the
    caller's transaction `known` them already)."""
    found = known if known is not None else subscriptions(session)
    return enqueue(session, now, event, data, found.wanting(event))


def credential_needs_attention(session: Session, now: datetime, credential_id: int) -> None:
    """`credential.needs-attention`: the credential's status became needs-reauthorization or
    refresh-failing. Its fields as `credential list --json` shows them, never a token."""
    found = subscriptions(session)
    if not found.wanting(WebhookEvent.CREDENTIAL_ATTENTION):
        return
    row = session.connection().execute(_CREDENTIAL, {"credential": credential_id}).first()
    if row is None:
        return
    data = {
        "id": row.id,
        "integration": row.name,
        "account": row.account,
        "status": row.status,
        "last_error": row.last_error,
    }
    publish(session, now, WebhookEvent.CREDENTIAL_ATTENTION, data, found)
