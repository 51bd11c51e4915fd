"""The Webhooks pages and /api/v1/webhooks: add a webhook (its secret shown once, to copy),
change it, send a test event, retry a delivery, rotate the secret, delete it; bad input said
inline with the form kept; the secret in no page and no API answer after the one that made it,
and never stored in plain text; agents kept out."""

from __future__ import annotations

import re
from html import unescape

import httpx2
from selectolax.lexbor import LexborHTMLParser
from sqlalchemy import select

from mailgate.context import Context
from mailgate.store.models import IdempotencyKey, Webhook
from mailgate.tracker.webhooks import add_webhook, list_deliveries, send_test_event
from tests.support.web import WebClient

URL = "https://hooks.example.com/mailgate"
_SECRET = re.compile(r'id="secret" type="text" value="(whsec_[^"]+)"')


async def post_form(client: WebClient, path: str, data: dict[str, object]) -> httpx2.Response:
    """A form post with repeated fields (the event checkboxes), as a browser sends it."""
    return await client.http.post(path, data={**data, "csrf": client.csrf or ""})  # type: ignore[arg-type]


def secret_in(page: str) -> str:
    found = _SECRET.search(page)
    assert found is not None, "the page shows no secret"
    return unescape(found.group(1))


async def pages(admin: WebClient, name: str) -> str:
    """Every page where a webhook shows, as one text."""
    paths = ["/webhooks", f"/webhooks/{name}", f"/webhooks/{name}/delete", "/audit", "/"]
    answers = [await admin.get(path) for path in paths]
    assert all(a.status_code == 200 for a in answers), [a.status_code for a in answers]
    return "\n".join(a.text for a in answers)


async def test_an_admin_adds_a_webhook_and_sees_its_secret_once(
    ctx: Context, admin: WebClient
) -> None:
    form = await admin.get("/webhooks/new")
    assert form.status_code == 200 and 'name="events"' in form.text

    added = await post_form(
        admin,
        "/webhooks",
        {"name": "chat", "url": URL, "events": ["issue.created", "comment.added"]},
    )

    assert added.status_code == 200
    secret = secret_in(added.text)
    assert 'data-copy="secret"' in added.text and "only time mailgate shows it" in added.text
    stored = await ctx.db.read(lambda s: s.scalar(select(Webhook.secret_enc)))
    assert stored is not None and secret not in stored
    everywhere = await pages(admin, "chat")
    assert secret not in everywhere
    listing = LexborHTMLParser((await admin.get("/webhooks")).text)
    row = listing.css_first('tr[data-webhook="chat"]')
    assert row is not None and URL in row.text() and "issue.created, comment.added" in row.text()
    nav = [a.text() for a in listing.css("nav.side a")]
    assert nav.index("Webhooks") == nav.index("Outbox") + 1

    rotated = await admin.post("/webhooks/chat/rotate-secret")
    assert rotated.status_code == 200
    new_secret = secret_in(rotated.text)
    assert new_secret != secret and "old secret stopped working" in rotated.text
    everywhere = await pages(admin, "chat")
    assert secret not in everywhere and new_secret not in everywhere


async def test_bad_input_is_said_next_to_the_form_with_what_was_typed(admin: WebClient) -> None:
    refused = await post_form(
        admin,
        "/webhooks",
        {"name": "chat", "url": "http://hooks.example.com/x", "events": ["comment.added"]},
    )

    assert refused.status_code == 400
    tree = LexborHTMLParser(refused.text)
    error = tree.css_first('p.error[role="alert"]')
    assert error is not None and "only for a loopback host" in error.text()
    assert tree.css_first("#name").attributes["value"] == "chat"
    assert tree.css_first("#url").attributes["value"] == "http://hooks.example.com/x"
    checked = [n.attributes["value"] for n in tree.css('input[name="events"][checked]')]
    assert checked == ["comment.added"]
    assert "whsec_" not in refused.text

    no_events = await post_form(admin, "/webhooks", {"name": "chat", "url": URL})
    assert no_events.status_code == 400 and "Choose at least one event" in no_events.text


async def test_change_test_event_retry_and_delete(ctx: Context, admin: WebClient) -> None:
    await add_webhook(ctx, "chat", URL, ["issue.created"])

    saved = await post_form(
        admin,
        "/webhooks/chat",
        {"url": URL + "/v2", "events": ["issue.created", "issue.status-changed"], "active": "yes"},
    )
    assert saved.status_code == 303
    page = await admin.get(saved.headers["location"])
    assert "Webhook saved." in page.text and URL + "/v2" in page.text
    assert "issue.created, issue.status-changed" in page.text

    wrong = await post_form(admin, "/webhooks/chat", {"url": "ftp://x", "events": ["bogus"]})
    assert wrong.status_code == 400 and "must start with https://" in unescape(wrong.text)
    assert 'value="ftp://x"' in wrong.text

    sent = await admin.post("/webhooks/chat/test")
    assert sent.status_code == 303
    [delivery] = await list_deliveries(ctx, "chat")
    page = await admin.get("/webhooks/chat")
    assert delivery["delivery_id"] in page.text and "is on its way" in page.text
    row = LexborHTMLParser(page.text).css_first(f'tr[data-delivery="{delivery["delivery_id"]}"]')
    assert row is not None and "ping" in row.text() and "pending" in row.text()
    retried = await admin.post(f"/webhooks/chat/deliveries/{delivery['delivery_id']}/retry")
    assert retried.status_code == 303
    missing = await admin.post("/webhooks/chat/deliveries/msg_nope/retry")
    assert missing.status_code == 404 and "no delivery 'msg_nope'" in unescape(missing.text)

    paused = await post_form(admin, "/webhooks/chat", {"url": URL, "events": ["issue.created"]})
    assert paused.status_code == 303
    refused = await admin.post("/webhooks/chat/test")
    assert refused.status_code == 400 and "is inactive" in refused.text

    confirm = await admin.get("/webhooks/chat/delete")
    assert confirm.status_code == 200 and "Delete webhook chat?" in confirm.text
    deleted = await admin.post("/webhooks/chat/delete")
    assert deleted.status_code == 303
    listing = LexborHTMLParser((await admin.get(deleted.headers["location"])).text)
    assert listing.css("tr[data-webhook]") == [] and "Webhook chat deleted." in listing.text()
    assert (await admin.get("/webhooks/chat")).status_code == 404


async def test_agents_get_no_webhook_page(agent: WebClient, agent_api: httpx2.AsyncClient) -> None:
    assert (await agent.get("/webhooks")).status_code == 403
    assert (await agent_api.get("/webhooks")).status_code == 403


async def test_the_api_gives_the_secret_once(ctx: Context, admin_api: httpx2.AsyncClient) -> None:
    body = {"name": "crm", "url": URL, "events": ["issue.created"]}
    made = await admin_api.post("/webhooks", json=body, headers={"Idempotency-Key": "k1"})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("whsec_") and made.json()["events"] == ["issue.created"]
    again = await admin_api.post("/webhooks", json=body, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.json() == made.json()  # a retry, nothing new
    kept = await ctx.db.read(lambda s: s.scalars(select(IdempotencyKey.response)).all())
    assert kept and all(secret not in (row or "") for row in kept)  # encrypted there too
    twice = await admin_api.post("/webhooks", json=body)
    assert twice.status_code == 400 and "already exists" in twice.json()["detail"]

    listed = await admin_api.get("/webhooks")
    assert [w["name"] for w in listed.json()["items"]] == ["crm"]
    changed = await admin_api.patch("/webhooks/crm", json={"active": False})
    assert changed.status_code == 200 and changed.json()["active"] is False
    await admin_api.patch("/webhooks/crm", json={"active": True})
    delivery_id = await send_test_event(ctx, "crm")
    deliveries = await admin_api.get("/webhooks/crm/deliveries", params={"limit": 1})
    [item] = deliveries.json()["items"]
    assert item["delivery_id"] == delivery_id and item["event"] == "ping"
    retried = await admin_api.post(f"/webhooks/crm/deliveries/{delivery_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    shown = [
        (await admin_api.get(path)).text
        for path in ("/webhooks", "/webhooks/crm", "/webhooks/crm/deliveries")
    ]
    assert all(secret not in text for text in shown)

    rotated = await admin_api.post("/webhooks/crm/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, "")
    bad = await admin_api.patch("/webhooks/crm", json={"url": "http://example.com/"})
    assert bad.status_code == 400 and "https://" in bad.json()["detail"]
    assert bad.headers["content-type"] == "application/problem+json"
    unknown = await admin_api.get("/webhooks/nope")
    assert unknown.status_code == 404 and "No webhook 'nope'" in unknown.json()["detail"]
    assert (await admin_api.delete("/webhooks/crm")).status_code == 204
    assert (await admin_api.get("/webhooks")).json() == {"items": [], "next": None}
