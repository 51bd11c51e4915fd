"""`POST /api/v1/mailboxes/import`: the entries of `mailbox import`, with the password itself in
place of a file; all or nothing, each bad entry listed in the problem's `errors`; an admin's
alone; a retry with its Idempotency-Key imports nothing twice."""

from __future__ import annotations

import httpx2
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import Mailbox
from mailgate.tracker.service import add_project
from tests.integration.test_mailbox_import import api_entry as entry

PASSWORD = "s3cret-mailbox-password"  # what api_entry gives


async def stored(ctx: Context) -> dict[str, tuple[int, str | None]]:
    def rows(session: Session) -> dict[str, tuple[int, str | None]]:
        query = select(Mailbox.name, Mailbox.poll_seconds, Mailbox.password_enc)
        return {name: (poll, sealed) for name, poll, sealed in session.execute(query)}

    return await ctx.db.run(rows)


async def test_mailboxes_are_imported_then_changed_and_a_retry_imports_nothing_twice(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await add_project(ctx, "HELP", "Help desk")
    key = {"Idempotency-Key": "import-1"}
    body = [entry(n) for n in range(3)]
    first = await admin_api.post("/mailboxes/import", json=body, headers=key)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "added": ["desk-000", "desk-001", "desk-002"],
        "updated": [],
        "warnings": [],
    }
    again = await admin_api.post("/mailboxes/import", json=body, headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    rows = await stored(ctx)
    assert sorted(rows) == ["desk-000", "desk-001", "desk-002"]
    assert all(sealed and PASSWORD not in sealed for _, sealed in rows.values())
    assert ctx.secrets.decrypt(rows["desk-000"][1] or "") == PASSWORD

    changed = await admin_api.post(
        "/mailboxes/import", json=[{"name": "desk-001", "poll": 300}, entry(3)]
    )
    assert changed.json() == {"added": ["desk-003"], "updated": ["desk-001"], "warnings": []}
    assert {name: poll for name, (poll, _) in (await stored(ctx)).items()} == {
        "desk-000": 60,
        "desk-001": 300,
        "desk-002": 60,
        "desk-003": 60,
    }
    listed = (await admin_api.get("/mailboxes")).text
    assert PASSWORD not in first.text + changed.text + listed


async def test_bad_entries_are_listed_and_nothing_is_stored(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await add_project(ctx, "HELP", "Help desk")
    body = [
        entry(0),
        entry(1, project="NOPE"),
        entry(2, password_file="/etc/passwd", password=None),
        entry(3, poll="often"),
        entry(4, credential=77, password=None),
    ]
    refused = await admin_api.post("/mailboxes/import", json=body)
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["detail"].startswith("4 of 5 entries are wrong, so nothing was imported")
    assert [(e["index"], e["name"]) for e in problem["errors"]] == [
        (2, "desk-001"),
        (3, "desk-002"),
        (4, "desk-003"),
        (5, "desk-004"),
    ]
    errors = [e["error"] for e in problem["errors"]]
    assert errors[0].startswith("No project NOPE: create it first")
    assert errors[1].startswith('unknown key "password_file": the keys are')
    assert errors[2] == '"poll" must be a whole number, not "often".'
    assert errors[3].startswith("No credential 77:")
    assert PASSWORD not in refused.text
    assert await stored(ctx) == {}

    for body_text, words in [
        ('{"name": "desk-000"}', "The body is not a JSON array of objects"),
        ("[]", "The body holds no mailboxes"),
        ("[{", "The body is not JSON"),
    ]:
        answer = await admin_api.post(
            "/mailboxes/import", content=body_text, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400 and answer.json()["detail"].startswith(words)
        assert "errors" not in answer.json()


async def test_an_agent_may_not_import(ctx: Context, agent_api: httpx2.AsyncClient) -> None:
    await add_project(ctx, "HELP", "Help desk")
    refused = await agent_api.post("/mailboxes/import", json=[entry(0)])
    assert refused.status_code == 403
    assert await stored(ctx) == {}
