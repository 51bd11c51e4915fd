"""Webhooks as the admin keeps them (`mailgate webhook …`, the Webhooks pages, the API): add,
change, delete, list, a webhook's deliveries, Retry, a test event, a new secret.

- A secret is `whsec_` + base64 of 32 random bytes (the Standard Webhooks serialization),
  encrypted at rest with the secret box. It is returned once, by `add_webhook` and
  `rotate_secret`, and never again: every view says only that one is set.
- A webhook's URL is https://; http:// only on a loopback host, for trying things out. It is
  read by the deliveries' HTTP client's own parser too: a URL that client would refuse (a host
  name that is not valid IDNA, say) is refused here, not at every delivery.
- Adding, changing, deleting a webhook and rotating its secret are in the audit log.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from mailgate.config import is_loopback_host
from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.names import check_name
from mailgate.store import audit
from mailgate.store.models import Webhook, WebhookDelivery
from mailgate.store.vocabulary import DeliveryStatus, WebhookEvent
from mailgate.store.webhooks import PING, enqueue

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64
MAX_URL = 2000
RECENT_DELIVERIES = 100
EVENTS = tuple(WebhookEvent)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_url(url: str) -> str:
    """The URL deliveries are POSTed to: https://, or http:// on a loopback host."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
        # The host the deliveries' client will connect to, as that client reads the URL.
        parsed = httpx2.URL(url)
        host = parsed.host or None
    except (ValueError, httpx2.InvalidURL):
        host = None
    if not url or len(url) > MAX_URL or host is None or any(c.isspace() for c in url):
        raise BadInput(
            f"The URL {url[:200]!r} is not a URL deliveries can be sent to: give the "
            "receiver's https:// address (e.g. https://hooks.example.com/mailgate)."
        )
    if parts.username is not None or parts.password is not None or parsed.userinfo:
        raise BadInput(
            "The URL holds a user name or password, which every list would show: let the "
            "receiver check the signature instead (each delivery is signed with the secret)."
        )
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    raise BadInput(
        f"The URL {url[:200]!r} must start with https:// (plain http:// is accepted only for "
        "a loopback host such as 127.0.0.1 or localhost, for testing)."
    )


def check_events(events: Iterable[str]) -> list[str]:
    """The events asked for, in the vocabulary's order; at least one, each known."""
    given = [e.strip() for e in events if e.strip()]
    unknown = [e for e in given if e not in EVENTS]
    if unknown:
        raise BadInput(f"Unknown event {unknown[0]!r}: choose among {', '.join(EVENTS)}.")
    if not given:
        raise BadInput(f"Choose at least one event to send: {', '.join(EVENTS)}.")
    return [e.value for e in EVENTS if e in given]


def find_webhook(session: Session, name: str) -> Webhook:
    webhook = session.scalars(select(Webhook).where(Webhook.name == name)).first()
    if webhook is None:
        raise NotFound(f"No webhook {name!r}: `mailgate webhook list` shows them.")
    return webhook


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_view(webhook: Webhook, counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A webhook as the CLI's --json, the API and the pages show it: never its secret."""
    counts = counts or {}
    return {
        "name": webhook.name,
        "url": webhook.url,
        "events": list(webhook.events),
        "active": webhook.active,
        "created_at": webhook.created_at.isoformat(),
        "updated_at": webhook.updated_at.isoformat(),
        "pending": int(counts.get("pending") or 0),
        "dead": int(counts.get("dead") or 0),
        "delivered": int(counts.get("delivered") or 0),
        "last_delivery_status": counts.get("last_status"),
        "last_delivery_at": _stamp(counts.get("last_at")),
        "last_error": counts.get("last_error"),
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    pending = delivery.status == DeliveryStatus.PENDING
    return {
        "delivery_id": delivery.delivery_id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": delivery.created_at.isoformat(),
        "next_attempt_at": delivery.next_attempt_at.isoformat() if pending else None,
        "delivered_at": _stamp(delivery.delivered_at),
        "response_status": delivery.response_status,
        "last_error": delivery.last_error,
    }


def _counts(session: Session, webhook_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per webhook: deliveries pending, dead and delivered, and its latest attempted one."""
    if not webhook_ids:
        return {}
    d = WebhookDelivery
    totals = session.execute(
        select(
            d.webhook_id,
            func.sum(case((d.status == DeliveryStatus.PENDING, 1), else_=0)),
            func.sum(case((d.status == DeliveryStatus.DEAD, 1), else_=0)),
            func.sum(case((d.status == DeliveryStatus.DELIVERED, 1), else_=0)),
        )
        .where(d.webhook_id.in_(webhook_ids))
        .group_by(d.webhook_id)
    ).all()
    found: dict[int, dict[str, Any]] = {
        hook: {"pending": pending, "dead": dead, "delivered": delivered}
        for hook, pending, dead, delivered in totals
    }
    latest = (
        select(d.webhook_id, func.max(d.id).label("id"))
        .where(d.webhook_id.in_(webhook_ids), d.attempts > 0)
        .group_by(d.webhook_id)
        .subquery()
    )
    for row in session.scalars(select(d).join(latest, latest.c.id == d.id)):
        found.setdefault(row.webhook_id, {}).update(
            last_status=row.status,
            last_at=row.delivered_at or row.next_attempt_at,
            last_error=row.last_error,
        )
    return found


def webhooks_view(session: Session) -> list[dict[str, Any]]:
    hooks = session.scalars(select(Webhook).order_by(Webhook.name)).all()
    counts = _counts(session, [h.id for h in hooks])
    return [webhook_view(h, counts.get(h.id)) for h in hooks]


def one_webhook_view(session: Session, name: str) -> dict[str, Any]:
    webhook = find_webhook(session, name)
    return webhook_view(webhook, _counts(session, [webhook.id]).get(webhook.id))


async def list_webhooks(ctx: Context) -> list[dict[str, Any]]:
    return await ctx.db.read(webhooks_view)


async def show_webhook(ctx: Context, name: str) -> dict[str, Any]:
    return await ctx.db.read(one_webhook_view, name)


async def add_webhook(
    ctx: Context, name: str, url: str, events: Iterable[str], *, active: bool = True
) -> tuple[dict[str, Any], str]:
    """A new webhook; returns its view and its secret (shown this once)."""
    check_name("Webhook", name)
    url = check_url(url)
    wanted = check_events(events)
    secret = new_secret()
    encrypted = ctx.secrets.encrypt(secret)

    def add(session: Session) -> dict[str, Any]:
        if session.scalar(select(Webhook.id).where(Webhook.name == name)) is not None:
            raise BadInput(
                f"A webhook {name!r} already exists: change it with `mailgate webhook set {name}`."
            )
        now = ctx.clock()
        webhook = Webhook(
            name=name,
            url=url,
            events=wanted,
            secret_enc=encrypted,
            active=active,
            created_at=now,
            updated_at=now,
        )
        session.add(webhook)
        session.flush()
        audit.record(session, now, "webhook.add", name, f"{url} ({', '.join(wanted)})")
        return webhook_view(webhook)

    return await ctx.db.run(add), secret


async def set_webhook(
    ctx: Context,
    name: str,
    *,
    url: str | None = None,
    events: Iterable[str] | None = None,
    active: bool | None = None,
    rotate: bool = False,
) -> tuple[dict[str, Any], str | None]:
    """Change a webhook (only what is given); with `rotate`, a new secret, returned this once
    (the old one stops working at once: deliveries are signed when sent)."""
    url = check_url(url) if url is not None else None
    wanted = check_events(events) if events is not None else None
    secret = new_secret() if rotate else None
    encrypted = ctx.secrets.encrypt(secret) if secret else None

    def change(session: Session) -> dict[str, Any]:
        webhook = find_webhook(session, name)
        before = webhook_view(webhook)
        if url is not None:
            webhook.url = url
        if wanted is not None:
            webhook.events = wanted
        if active is not None:
            webhook.active = active
        changed = [k for k, v in webhook_view(webhook).items() if before[k] != v]
        now = ctx.clock()
        if changed or encrypted:
            webhook.updated_at = now
        if changed:
            audit.record(session, now, "webhook.set", name, ", ".join(changed))
        if encrypted:
            webhook.secret_enc = encrypted
            audit.record(session, now, "webhook.rotate-secret", name, "a new secret")
        return one_webhook_view(session, name)

    return await ctx.db.run(change), secret


async def rotate_secret(ctx: Context, name: str) -> tuple[dict[str, Any], str]:
    view, secret = await set_webhook(ctx, name, rotate=True)
    assert secret is not None
    return view, secret


async def delete_webhook(ctx: Context, name: str) -> None:
    """Delete a webhook and its deliveries, sent or not."""

    def delete(session: Session) -> None:
        webhook = find_webhook(session, name)
        session.delete(webhook)
        session.flush()
        audit.record(session, ctx.clock(), "webhook.delete", name, webhook.url)

    await ctx.db.run(delete)


async def list_deliveries(
    ctx: Context, name: str, *, limit: int = RECENT_DELIVERIES, after: str | None = None
) -> list[dict[str, Any]]:
    """A webhook's deliveries, newest first: at most `limit`, those older than the delivery
    `after` names if given (the last of the page before)."""

    def listing(session: Session) -> list[dict[str, Any]]:
        webhook = find_webhook(session, name)
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(WebhookDelivery.id < _delivery(session, webhook, after).id)
        return [delivery_view(row) for row in session.scalars(query).all()]

    return await ctx.db.read(listing)


async def show_delivery(ctx: Context, name: str, delivery_id: str) -> dict[str, Any]:
    def look(session: Session) -> dict[str, Any]:
        return delivery_view(_delivery(session, find_webhook(session, name), delivery_id))

    return await ctx.db.read(look)


def _delivery(session: Session, webhook: Webhook, delivery_id: str) -> WebhookDelivery:
    row = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook.id,
            WebhookDelivery.delivery_id == delivery_id,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"Webhook {webhook.name!r} has no delivery {delivery_id!r}: "
            f"`mailgate webhook deliveries {webhook.name}` shows them."
        )
    return row


async def retry_deliveries(ctx: Context, name: str, delivery_id: str | None = None) -> int:
    """Send again at once: one delivery (dead or pending), or every dead one of the webhook;
    returns how many. A dead one starts over, with three more days of retries."""

    def retry(session: Session) -> int:
        webhook = find_webhook(session, name)
        now = ctx.clock()
        query = update(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
        if delivery_id is None:
            query = query.where(WebhookDelivery.status == DeliveryStatus.DEAD)
        else:
            row = _delivery(session, webhook, delivery_id)
            if row.status == DeliveryStatus.DELIVERED:
                raise BadInput(
                    f"Delivery {delivery_id} was delivered already: only pending or dead "
                    "deliveries are sent again."
                )
            query = query.where(WebhookDelivery.id == row.id)
        # A dead delivery is queued again: its three days of retries start over from now
        # (`created_at` is when it was queued); its id stays, so receivers de-duplicate.
        dead = WebhookDelivery.status == DeliveryStatus.DEAD
        result = session.execute(
            query.values(
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                attempts=case((dead, 0), else_=WebhookDelivery.attempts),
                created_at=case((dead, now), else_=WebhookDelivery.created_at),
            ).execution_options(synchronize_session=False)
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        if count:
            which = delivery_id or f"{count} dead"
            audit.record(session, now, "webhook.retry", name, f"delivery {which}")
        return count

    return await ctx.db.run(retry)


async def send_test_event(ctx: Context, name: str) -> str:
    """Queue a `ping` for this webhook alone (whatever its events); returns its delivery id."""

    def ping(session: Session) -> str:
        webhook = find_webhook(session, name)
        if not webhook.active:
            raise BadInput(
                f"Webhook {name!r} is inactive, so nothing is sent to it: make it active first."
            )
        now = ctx.clock()
        data = {"webhook": webhook.name, "message": "A test event from mailgate."}
        [delivery_id] = enqueue(session, now, PING, data, [webhook.id])
        return delivery_id

    return await ctx.db.run(ping)
