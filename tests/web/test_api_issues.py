"""`/api/v1/issues`: find, read, comment (once per Idempotency-Key), close, reopen, assign and
download, with an agent's token as well as an admin's; errors are problems."""

from __future__ import annotations

import httpx2
from sqlalchemy import func, select

from mailgate.context import Context
from mailgate.store.models import Comment, OutboxMessage
from mailgate.tracker.issues import show_issue
from mailgate.tracker.service import NewAttachment
from tests.support.desk import PNG, desk_project, mailed, many_issues, message

PROBLEM = "application/problem+json"


async def comments_stored(ctx: Context) -> int:
    return int(await ctx.db.read(lambda s: s.scalar(select(func.count()).select_from(Comment))))


async def test_an_agents_token_finds_issues_a_page_at_a_time(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    await desk_project(ctx)
    await many_issues(ctx, [f"Printer {n}" for n in range(1, 6)])
    await many_issues(ctx, ["Toner is empty"], reporter="dave@example.net")
    first = await agent_api.get("/issues", params={"limit": 4})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [i["key"] for i in body["items"]] == ["HELP-6", "HELP-5", "HELP-4", "HELP-3"]
    item = body["items"][0]
    assert item["reporter"] == "dave@example.net" and item["assignee"] is None
    assert {"summary", "status", "created_at", "comments", "source_message_id"} <= set(item)
    rest = (await agent_api.get("/issues", params={"limit": 4, "cursor": body["next"]})).json()
    assert [i["key"] for i in rest["items"]] == ["HELP-2", "HELP-1"] and rest["next"] is None
    found = (await agent_api.get("/issues", params={"q": "toner", "status": "open"})).json()
    assert [i["key"] for i in found["items"]] == ["HELP-6"]
    mine = (await agent_api.get("/issues", params={"assignee": "me"})).json()
    assert mine["items"] == []
    oldest = await agent_api.get("/issues", params={"sort": "created", "order": "asc", "limit": 1})
    assert oldest.json()["items"][0]["key"] == "HELP-1"
    bad = await agent_api.get("/issues", params={"cursor": "nonsense"})
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    assert "start again without it" in bad.json()["detail"]


async def test_an_issue_with_its_conversation_and_attachments(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    await desk_project(ctx)
    await mailed(ctx, message(attachments=[("smoke.png", "image/png", PNG)]))
    await mailed(ctx, message("Re: HELP-1", message_id="<r1@example.net>", body="Still."))
    shown = await agent_api.get("/issues/HELP-1")
    assert shown.status_code == 200, shown.text
    issue = shown.json()
    assert issue["key"] == "HELP-1" and issue["description"].startswith("It is burning.")
    assert issue["assignee"] is None and issue["comments_count"] == 1
    [comment] = issue["comments"]
    assert comment["body"].startswith("Still.") and comment["source_message_id"] == "r1@example.net"
    [attachment] = issue["attachments"]
    assert attachment["image_type"] == "image/png" and attachment["comment"] is None
    url = attachment["url"]
    assert url == f"{ctx.settings.base_url}/api/v1/issues/HELP-1/attachments/{attachment['id']}"
    download = await agent_api.get(f"/issues/HELP-1/attachments/{attachment['id']}")
    assert download.content == PNG and download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"] == 'attachment; filename="smoke.png"'
    assert download.headers["x-content-type-options"] == "nosniff"
    missing = await agent_api.get("/issues/HELP-9")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    await many_issues(ctx, ["Other"], attachments=[NewAttachment("a.html", "text/html", b"<p>")])
    [other] = (await show_issue(ctx, "HELP-2"))["attachments"]
    html = await agent_api.get(f"/issues/HELP-2/attachments/{other['id']}")
    assert html.headers["content-type"] == "application/octet-stream"
    assert (await agent_api.get(f"/issues/HELP-1/attachments/{other['id']}")).status_code == 404


async def test_a_comment_is_made_once_per_idempotency_key(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    key = {"Idempotency-Key": "retry-1"}
    first = await agent_api.post("/issues/HELP-1/comments", json={"body": "On it."}, headers=key)
    assert first.status_code == 201, first.text
    made = first.json()
    assert made["author"] == "api-agent@example.com" and made["body"] == "On it."
    again = await agent_api.post("/issues/HELP-1/comments", json={"body": "On it."}, headers=key)
    assert again.status_code == 201 and again.json() == made
    assert await comments_stored(ctx) == 1
    other = await agent_api.post("/issues/HELP-1/comments", json={"body": "Else."}, headers=key)
    assert other.status_code == 422 and other.headers["content-type"] == PROBLEM
    assert await comments_stored(ctx) == 1
    # The reporter was mailed once, threaded to their message.
    raws = await ctx.db.read(lambda s: s.scalars(select(OutboxMessage.raw)).all())
    answers = [raw for raw in raws if b"On it." in raw]
    assert len(answers) == 1 and b"In-Reply-To: <m1@example.net>" in answers[0]
    listed = (await agent_api.get("/issues/HELP-1/comments")).json()
    assert [c["id"] for c in listed["items"]] == [made["id"]] and listed["next"] is None
    empty = await agent_api.post("/issues/HELP-1/comments", json={"body": " "})
    assert empty.status_code == 400 and "The comment is empty" in empty.json()["detail"]
    nowhere = await agent_api.post("/issues/HELP-7/comments", json={"body": "Hello?"})
    assert nowhere.status_code == 404


async def test_comments_come_a_page_at_a_time(ctx: Context, agent_api: httpx2.AsyncClient) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    for n in range(3):
        made = await agent_api.post("/issues/HELP-1/comments", json={"body": f"Note {n}"})
        assert made.status_code == 201
    first = (await agent_api.get("/issues/HELP-1/comments", params={"limit": 2})).json()
    assert [c["body"] for c in first["items"]] == ["Note 0", "Note 1"]
    rest = await agent_api.get(
        "/issues/HELP-1/comments", params={"limit": 2, "cursor": first["next"]}
    )
    assert [c["body"] for c in rest.json()["items"]] == ["Note 2"] and rest.json()["next"] is None


async def test_close_reopen_and_assign(ctx: Context, admin_api: httpx2.AsyncClient) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    closed = await admin_api.post("/issues/HELP-1/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    reopened = await admin_api.post("/issues/HELP-1/reopen")
    assert reopened.json()["status"] == "open"
    given = await admin_api.post(
        "/issues/HELP-1/assign", json={"assignee": "api-admin@example.com"}
    )
    assert given.status_code == 200 and given.json()["assignee"] == "api-admin@example.com"
    mine = (await admin_api.get("/issues", params={"assignee": "me"})).json()["items"]
    assert [i["key"] for i in mine] == ["HELP-1"]
    refused = await admin_api.post("/issues/HELP-1/assign", json={"assignee": "who@example.org"})
    assert refused.status_code == 400 and "is not an enabled user" in refused.json()["detail"]
    nobody = await admin_api.post("/issues/HELP-1/assign", json={"assignee": None})
    assert nobody.json()["assignee"] is None
    assert (await admin_api.post("/issues/NOPE-1/close")).status_code == 404


async def test_the_issue_routes_are_in_the_openapi_description(
    admin_api: httpx2.AsyncClient,
) -> None:
    paths = (await admin_api.get("/openapi.json")).json()["paths"]
    for path in (
        "/issues",
        "/issues/{key}",
        "/issues/{key}/comments",
        "/issues/{key}/close",
        "/issues/{key}/reopen",
        "/issues/{key}/assign",
        "/issues/{key}/attachments/{attachment_id}",
    ):
        assert path in paths, path
    download = paths["/issues/{key}/attachments/{attachment_id}"]["get"]["responses"]["200"]
    assert set(download["content"]) == {
        "application/octet-stream",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    }
    created = paths["/issues/{key}/comments"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CommentItem"
    }
