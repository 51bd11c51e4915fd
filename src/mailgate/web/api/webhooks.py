"""`/api/v1/webhooks`: URLs told of the desk's events, as `mailgate webhook` lists, adds,
changes and deletes them, with their deliveries, Retry and a new secret.

A webhook's secret is in the answer that made it (POST, and POST …/rotate-secret) and nowhere
else. An `Idempotency-Key` retry of the POST gets the same answer for 24 hours; the answer is
kept with the secret encrypted, like the webhook's own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mailgate.context import Context
from mailgate.store.models import User
from mailgate.store.vocabulary import WebhookEvent
from mailgate.tracker.webhooks import (
    MAX_URL,
    add_webhook,
    delete_webhook,
    list_deliveries,
    list_webhooks,
    retry_deliveries,
    rotate_secret,
    send_test_event,
    set_webhook,
    show_delivery,
    show_webhook,
)
from mailgate.web.api.common import (
    PROBLEMS,
    Cursor,
    Limit,
    Page,
    admin_only,
    decode_cursor,
    encode_cursor,
    page_of,
)
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async
from mailgate.web.api.shared import Body, ObjectName

DeliveryId = Annotated[
    str,
    Path(
        pattern=r"^msg_[A-Za-z0-9_-]{1,36}$",
        description="The delivery's id: its `webhook-id` header, the same at every attempt.",
    ),
]


class Webhook(BaseModel):
    """A webhook as `webhook list --json` shows it: never its secret."""

    name: str
    url: str
    events: list[WebhookEvent]
    active: bool = Field(description="Inactive: no events are queued; waiting deliveries wait.")
    created_at: str
    updated_at: str
    pending: int = Field(description="Deliveries not delivered yet (being retried).")
    dead: int = Field(description="Deliveries given up on after three days: Retry sends them.")
    delivered: int
    last_delivery_status: str | None = Field(
        description="pending, delivered or dead: the latest attempted delivery's status."
    )
    last_delivery_at: str | None
    last_error: str | None = Field(description="What went wrong at its latest attempt.")


class CreatedWebhook(Webhook):
    secret: str = Field(
        description="`whsec_` + base64: the key of the deliveries' signatures (Standard "
        "Webhooks), shown in this answer only."
    )


class NewWebhook(Body):
    name: str = Field(max_length=100, description="Letters, digits, '.', '_' and '-'.")
    url: str = Field(
        max_length=MAX_URL, description="https:// (http:// only on a loopback host, for tests)."
    )
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WebhookEvent))
    active: bool = True


class WebhookChange(Body):
    """Only the fields given change."""

    url: str | None = Field(default=None, max_length=MAX_URL)
    events: list[WebhookEvent] | None = Field(
        default=None, min_length=1, max_length=len(WebhookEvent)
    )
    active: bool | None = None


class Delivery(BaseModel):
    """One event sent (or being sent) to one webhook."""

    delivery_id: str
    event: str = Field(description="An event the webhook subscribes to, or `ping` (a test).")
    status: str = Field(description="pending, delivered or dead.")
    attempts: int
    created_at: str = Field(description="When it was queued (again, after a Retry of a dead one).")
    next_attempt_at: str | None
    delivered_at: str | None
    response_status: int | None = Field(description="The receiver's HTTP status at the latest.")
    last_error: str | None


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/webhooks",
        tags=["webhooks"],
        responses=PROBLEMS,
        dependencies=[Depends(admin_only)],
    )

    @routes.get("")
    async def webhooks(cursor: Cursor = None, limit: Limit = 50) -> Page[Webhook]:
        """Every webhook, by name."""
        rows = [Webhook(**row) for row in await list_webhooks(ctx)]
        return page_of(rows, cursor, limit, key=lambda hook: hook.name)

    @routes.get("/{name}")
    async def webhook(name: ObjectName) -> Webhook:
        """One webhook."""
        return Webhook(**await show_webhook(ctx, name))

    @routes.post("", status_code=201, response_model=CreatedWebhook)
    async def new_webhook(
        request: Request,
        given: NewWebhook,
        user: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Add a webhook (`mailgate webhook add`); the answer holds its secret, this once."""

        async def create() -> tuple[int, CreatedWebhook]:
            view, secret = await add_webhook(
                ctx, given.name, given.url, given.events, active=given.active
            )
            return 201, CreatedWebhook(**view, secret=secret)

        # Kept for a retry encrypted: the secret is shown in this answer only.
        return await once_async(request, ctx, user, idempotency_key, create, holds_secret=True)

    @routes.patch("/{name}")
    async def change_webhook(name: ObjectName, change: WebhookChange) -> Webhook:
        """Change a webhook (`mailgate webhook set`): only what the body gives."""
        given = change.given()
        view, _ = await set_webhook(
            ctx, name, url=given.get("url"), events=given.get("events"), active=given.get("active")
        )
        return Webhook(**view)

    @routes.delete("/{name}", status_code=204, response_class=Response)
    async def remove_webhook(name: ObjectName) -> Response:
        """Delete a webhook and its deliveries (`mailgate webhook delete`)."""
        await delete_webhook(ctx, name)
        return Response(status_code=204)

    @routes.post("/{name}/rotate-secret")
    async def new_secret(name: ObjectName) -> CreatedWebhook:
        """A new secret, in this answer only; the old one stops working at once."""
        view, secret = await rotate_secret(ctx, name)
        return CreatedWebhook(**view, secret=secret)

    @routes.get("/{name}/deliveries")
    async def deliveries(
        name: ObjectName, cursor: Cursor = None, limit: Limit = 50
    ) -> Page[Delivery]:
        """The webhook's deliveries, newest first (`mailgate webhook deliveries`)."""
        after = str(decode_cursor(cursor)) if cursor is not None else None
        rows = await list_deliveries(ctx, name, limit=limit + 1, after=after)
        items = [Delivery(**row) for row in rows[:limit]]
        following = encode_cursor(items[-1].delivery_id) if len(rows) > limit else None
        return Page[Delivery](items=items, next=following)

    @routes.post("/{name}/deliveries/{delivery_id}/retry")
    async def retry(name: ObjectName, delivery_id: DeliveryId) -> Delivery:
        """Send a pending or dead delivery again at once (`mailgate webhook retry`)."""
        await retry_deliveries(ctx, name, delivery_id)
        return Delivery(**await show_delivery(ctx, name, delivery_id))

    @routes.post("/{name}/test", status_code=202)
    async def test_event(name: ObjectName) -> Delivery:
        """Queue a `ping` for this webhook, whatever its events (the page's Send test event)."""
        delivery_id = await send_test_event(ctx, name)
        return Delivery(**await show_delivery(ctx, name, delivery_id))

    return routes
