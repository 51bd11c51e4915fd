"""`/webhooks`: URLs told of the desk's events — add one (its secret shown once, to copy),
change its URL, events and whether it is active, rotate its secret, send a test event, delete
it, and see its latest deliveries with Retry (`mailgate webhook add|set|list|deliveries|retry`).

A secret is shown in the answer to the POST that made it, never stored to show later (only
encrypted, for signing): a reload asks the browser to post again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store.vocabulary import WebhookEvent
from mailgate.tracker.webhooks import (
    add_webhook,
    delete_webhook,
    list_deliveries,
    list_webhooks,
    retry_deliveries,
    rotate_secret,
    send_test_event,
    set_webhook,
    show_webhook,
)
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, form_list, form_values, render

EVENTS = (
    (WebhookEvent.ISSUE_CREATED, "An issue is created (from a mail, or by an agent)"),
    (WebhookEvent.COMMENT_ADDED, "A comment is added (a customer's reply or an agent's)"),
    (WebhookEvent.STATUS_CHANGED, "An issue is closed or reopened"),
    (WebhookEvent.MESSAGE_QUARANTINED, "A received message is quarantined"),
    (
        WebhookEvent.CREDENTIAL_ATTENTION,
        "A credential needs re-authorization, or its refresh fails",
    ),
)
# A delivery's status as words and colour together.
STATUS = {"delivered": "ok", "pending": "warn", "dead": "bad"}


def webhook_href(name: str) -> str:
    return f"/webhooks/{name}"  # names are letters, digits, '.', '_' and '-' (`mailgate.names`)


async def _webhook_page(
    request: Request,
    ctx: Context,
    name: str,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    action_error: str | None = None,
) -> Response:
    try:
        view = await show_webhook(ctx, name)
        deliveries = await list_deliveries(ctx, name)
    except NotFound as problem:
        return await not_found(request, ctx, problem, "/webhooks", "All webhooks")
    values = {
        "title": f"Webhook {view['name']}",
        "view": view,
        "href": webhook_href(view["name"]),
        "form": form or view,
        "events": EVENTS,
        "deliveries": [_with_time(d) for d in deliveries],
        "status": STATUS,
        "error": error,
        "action_error": action_error,
    }
    failed = error or action_error
    return await render(request, ctx, "webhook.html", values, status_code=400 if failed else 200)


def _with_time(delivery: dict[str, Any]) -> dict[str, Any]:
    """A delivery with the time that matters for its status, for `when`."""
    for label, key in (
        ("delivered", "delivered_at"),
        ("next attempt", "next_attempt_at"),
        ("queued", "created_at"),
    ):
        if delivery.get(key):
            return {**delivery, "at_label": label, "at": datetime.fromisoformat(delivery[key])}
    return delivery


async def _secret_page(
    request: Request, ctx: Context, view: dict[str, Any], secret: str, *, added: bool
) -> Response:
    values = {
        "title": f"The secret of webhook {view['name']}",
        "view": view,
        "href": webhook_href(view["name"]),
        "secret": secret,
        "added": added,
    }
    return await render(request, ctx, "webhook_secret.html", values)


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/webhooks", include_in_schema=False)
    async def webhooks_page(request: Request) -> Response:
        rows = [{**row, "href": webhook_href(row["name"])} for row in await list_webhooks(ctx)]
        values = {"title": "Webhooks", "webhooks": rows, "status": STATUS}
        return await render(request, ctx, "webhooks.html", values)

    @routes.get("/webhooks/new", include_in_schema=False)
    async def new_webhook_page(request: Request) -> Response:
        form = {"name": "", "url": "", "events": []}
        values = {"title": "Add a webhook", "form": form, "events": EVENTS}
        return await render(request, ctx, "webhook_new.html", values)

    @routes.post("/webhooks", include_in_schema=False)
    async def new_webhook(request: Request) -> Response:
        form = await form_values(request)
        events = await form_list(request, "events")
        name = form.get("name", "").strip()
        try:
            view, secret = await add_webhook(ctx, name, form.get("url", ""), events)
        except BadInput as problem:
            typed = {"name": name, "url": form.get("url", ""), "events": events}
            values = {"title": "Add a webhook", "form": typed, "events": EVENTS}
            values["error"] = str(problem)
            return await render(request, ctx, "webhook_new.html", values, status_code=400)
        return await _secret_page(request, ctx, view, secret, added=True)

    @routes.get("/webhooks/{name}", include_in_schema=False)
    async def webhook_page(request: Request, name: str) -> Response:
        return await _webhook_page(request, ctx, name)

    @routes.post("/webhooks/{name}", include_in_schema=False)
    async def change_webhook(request: Request, name: str) -> Response:
        form = await form_values(request)
        events = await form_list(request, "events")
        active = "active" in form
        try:
            await set_webhook(ctx, name, url=form.get("url", ""), events=events, active=active)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/webhooks", "All webhooks")
        except BadInput as problem:
            typed = {"url": form.get("url", ""), "events": events, "active": active}
            return await _webhook_page(request, ctx, name, form=typed, error=str(problem))
        return await done(request, ctx, webhook_href(name), "Webhook saved.")

    @routes.post("/webhooks/{name}/test", include_in_schema=False)
    async def test_event(request: Request, name: str) -> Response:
        try:
            delivery_id = await send_test_event(ctx, name)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/webhooks", "All webhooks")
        except BadInput as problem:
            return await _webhook_page(request, ctx, name, action_error=str(problem))
        message = f"A test event ({delivery_id}) is on its way: its delivery shows below."
        return await done(request, ctx, webhook_href(name), message)

    @routes.post("/webhooks/{name}/rotate-secret", include_in_schema=False)
    async def new_secret(request: Request, name: str) -> Response:
        try:
            view, secret = await rotate_secret(ctx, name)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/webhooks", "All webhooks")
        return await _secret_page(request, ctx, view, secret, added=False)

    @routes.post("/webhooks/{name}/deliveries/{delivery_id}/retry", include_in_schema=False)
    async def retry(request: Request, name: str, delivery_id: str) -> Response:
        try:
            await retry_deliveries(ctx, name, delivery_id)
        except NotFound as problem:
            return await not_found(request, ctx, problem, webhook_href(name), "The webhook")
        except BadInput as problem:
            return await _webhook_page(request, ctx, name, action_error=str(problem))
        message = f"Delivery {delivery_id} is sent again at once."
        return await done(request, ctx, webhook_href(name), message)

    @routes.get("/webhooks/{name}/delete", include_in_schema=False)
    async def delete_page(request: Request, name: str) -> Response:
        try:
            view = await show_webhook(ctx, name)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/webhooks", "All webhooks")
        values = {"title": f"Delete webhook {name}?", "view": view, "href": webhook_href(name)}
        return await render(request, ctx, "webhook_delete.html", values)

    @routes.post("/webhooks/{name}/delete", include_in_schema=False)
    async def delete(request: Request, name: str) -> Response:
        try:
            await delete_webhook(ctx, name)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/webhooks", "All webhooks")
        return await done(request, ctx, "/webhooks", f"Webhook {name} deleted.")

    return routes
