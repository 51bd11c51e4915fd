"""Quarantine, outbox and audit log in the REST API: a quarantined message listed, downloaded,
retried or discarded (by an agent's token too), a long quarantine a page at a time; the outbox
by status, newest first, a page at a time, and its retry; the audit log newest first, filtered,
a page at a time."""

from __future__ import annotations

import httpx2

from mailgate.context import Context
from mailgate.tracker.service import add_project
from tests.support.clock import FakeClock
from tests.web.test_quarantine_outbox_pages import (
    mail,
    many_quarantined,
    outbox_messages,
    quarantined,
)


async def test_an_agent_downloads_retries_and_discards_quarantined_mail(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    first, second = await quarantined(ctx, "first"), await quarantined(ctx, "second")
    listed = (await agent_api.get("/quarantine", params={"limit": 1})).json()
    [item] = listed["items"]
    assert (item["id"], item["sender"], item["kept"]) == (first, "carol@example.net", True)
    assert "project HELP does not exist" in item["reason"]
    rest = (await agent_api.get("/quarantine", params={"cursor": listed["next"]})).json()
    assert [i["id"] for i in rest["items"]] == [second] and rest["next"] is None
    raw = await agent_api.get(f"/quarantine/{first}/raw")
    assert raw.content == mail("first")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"] == f'attachment; filename="message-{first}.eml"'
    still = await agent_api.post(f"/quarantine/{first}/retry")
    assert still.json()["status"] == "quarantined"
    await add_project(ctx, "HELP", "Help desk")
    made = await agent_api.post(f"/quarantine/{first}/retry", json={"as_comment": False})
    assert (made.json()["status"], made.json()["issue"]) == ("created", "HELP-1")
    dropped = await agent_api.post(f"/quarantine/{second}/discard", json={"reason": "spam"})
    assert dropped.json() == {"id": second, "status": "ignored", "reason": "discarded: spam"}
    assert (await agent_api.get("/quarantine")).json()["items"] == []
    gone = await agent_api.post(f"/quarantine/{second}/retry")
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    assert (await agent_api.get(f"/quarantine/{second}/raw")).status_code == 404
    assert (await agent_api.get("/outbox")).status_code == 403  # the outbox is the admins'


async def test_the_quarantine_pages_in_its_query_and_a_discard_meanwhile_moves_nothing(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    ids = await many_quarantined(ctx, 130)
    first = (await agent_api.get("/quarantine", params={"limit": 60})).json()
    assert [item["id"] for item in first["items"]] == ids[:60]
    assert {item["sender"] for item in first["items"]} == {"dave@example.net"}
    # The message the cursor names is discarded before the next page is asked for.
    assert (await agent_api.post(f"/quarantine/{ids[59]}/discard")).status_code == 200
    second = (await agent_api.get("/quarantine", params={"cursor": first["next"]})).json()
    assert [item["id"] for item in second["items"]] == ids[60:110]
    third = (await agent_api.get("/quarantine", params={"cursor": second["next"]})).json()
    assert [item["id"] for item in third["items"]] == ids[110:] and third["next"] is None


async def test_the_outbox_by_status_newest_first_and_its_retry(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await outbox_messages(ctx, ["sent", "dead", "pending", "dead"])
    everything = (await admin_api.get("/outbox", params={"limit": 3})).json()
    assert [m["id"] for m in everything["items"]] == [4, 3, 2]
    older = (await admin_api.get("/outbox", params={"cursor": everything["next"]})).json()
    assert [m["id"] for m in older["items"]] == [1] and older["next"] is None
    dead = (await admin_api.get("/outbox", params={"status": "dead"})).json()
    assert [(m["id"], m["status"], m["attempts"]) for m in dead["items"]] == [
        (4, "dead", 3),
        (2, "dead", 3),
    ]
    assert dead["items"][0]["subject"] == "Notification 4"
    queued = (await admin_api.post("/outbox/2/retry")).json()
    assert queued["queued"] == 1
    assert (queued["message"]["status"], queued["message"]["attempts"]) == ("pending", 0)
    assert (await admin_api.post("/outbox/1/retry")).status_code == 404  # sent already
    unknown = await admin_api.get("/outbox", params={"status": "lost"})
    assert unknown.status_code == 422


async def test_the_audit_log_newest_first_filtered_and_paged(
    ctx: Context, admin_api: httpx2.AsyncClient, clock: FakeClock
) -> None:
    since = clock.advance(minutes=1)
    for key in ("AAA", "BBB", "CCC"):
        clock.advance(seconds=1)
        assert (
            await admin_api.post("/projects", json={"key": key, "name": key})
        ).status_code == 201
    first = (await admin_api.get("/audit", params={"action": "project", "limit": 2})).json()
    assert [e["subject"] for e in first["items"]] == ["CCC", "BBB"]
    assert first["items"][0]["actor"] == "api-admin@example.com"
    rest = (
        await admin_api.get(
            "/audit", params={"action": "project", "limit": 2, "cursor": first["next"]}
        )
    ).json()
    assert [e["subject"] for e in rest["items"]] == ["AAA"] and rest["next"] is None
    recent = (await admin_api.get("/audit", params={"since": since.isoformat()})).json()
    assert {e["action"] for e in recent["items"]} == {"project.add"}
    nonsense = await admin_api.get("/audit", params={"cursor": "not-a-cursor"})
    assert nonsense.status_code == 400
