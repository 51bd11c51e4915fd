"""API tokens on Your account: every signed-in user makes their own, sees it once (never again,
only its hint), and revokes only their own; the forms need the session's CSRF token."""

from __future__ import annotations

import re
from html import unescape

import httpx2

from mailgate.context import Context
from mailgate.tracker.tokens import create_token, list_tokens
from mailgate.web.app import create_app
from tests.support.web import WebClient

NEW_TOKEN = re.compile(r'<input id="new_token" type="text" value="([^"]+)" readonly>')


def _api(ctx: Context, token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(ctx, run_workers=False)),
        base_url=ctx.settings.base_url,
        headers={"authorization": f"Bearer {token}"},
    )


async def test_a_token_is_shown_once_listed_by_its_hint_and_revoked(
    ctx: Context, agent: WebClient
) -> None:
    page = await agent.get("/account")
    assert page.status_code == 200
    assert "API tokens" in page.text and "You have no API tokens." in page.text

    made = await agent.post("/account/tokens", {"name": "chat bot"})
    assert made.status_code == 201
    found = NEW_TOKEN.search(made.text)
    assert found is not None, made.text
    token = unescape(found.group(1))
    assert token.startswith("mgt_")
    assert 'data-copy="new_token"' in made.text and "won't be shown again" in made.text

    async with _api(ctx, token) as api:
        me = await api.get("/api/v1/me")
        assert me.json() == {"email": "agent@example.com", "role": "agent"}

        listed = await agent.get("/account")
        assert token not in listed.text  # never again after the answer that made it
        assert 'id="new_token"' not in listed.text
        (view,) = await list_tokens(ctx, "agent@example.com")
        row = listed.text.split(f'data-token="{view["id"]}"')[1].split("</tr>")[0]
        assert "chat bot" in row and view["hint"] in row and ">active<" in row
        assert "never" not in row and " from 127.0.0.1" in row  # its last use, and where from

        revoked = await agent.post(f"/account/tokens/{view['id']}/revoke")
        assert revoked.status_code == 303 and revoked.headers["location"] == "/account"
        assert (await api.get("/api/v1/me")).status_code == 401
    after = await agent.get("/account")
    assert "Token chat bot revoked." in after.text
    row = after.text.split(f'data-token="{view["id"]}"')[1].split("</tr>")[0]
    assert ">revoked<" in row and "Revoke</button>" not in row


async def test_another_users_token_is_not_found_and_keeps_working(
    ctx: Context, agent: WebClient
) -> None:
    other, token = await create_token(ctx, "boss@example.com", "boss's script")
    for path in (f"/account/tokens/{other['id']}/revoke", "/account/tokens/x/revoke"):
        answer = await agent.post(path)
        assert answer.status_code == 404, path
        assert "No token" in answer.text
    page = await agent.get("/account")
    assert "boss&#39;s script" not in page.text and other["hint"] not in page.text
    async with _api(ctx, token) as api:
        assert (await api.get("/api/v1/me")).json()["email"] == "boss@example.com"


async def test_the_forms_need_the_csrf_token(ctx: Context, admin: WebClient) -> None:
    view, _ = await create_token(ctx, "admin@example.com", "kept")
    made = await admin.http.post("/account/tokens", data={"name": "forged"})
    assert made.status_code == 403 and "mgt_" not in made.text
    revoked = await admin.http.post(f"/account/tokens/{view['id']}/revoke")
    assert revoked.status_code == 403
    assert [(t["name"], t["revoked_at"]) for t in await list_tokens(ctx)] == [("kept", None)]


async def test_a_bad_name_is_refused_inline_with_the_form_refilled(
    ctx: Context, admin: WebClient
) -> None:
    long_name = "n" * 101
    refused = await admin.post("/account/tokens", {"name": long_name})
    assert refused.status_code == 400
    assert '<p class="error" role="alert">Give the token a name' in refused.text
    assert f'value="{long_name}"' in refused.text and 'id="new_token"' not in refused.text
    assert await list_tokens(ctx) == []
