"""API tokens: shown once, stored hashed, revocable at once, last use recorded, with their
user's role; anonymous callers get a problem (RFC 9457) saying how to authenticate."""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import select

from mailgate.context import Context
from mailgate.store.models import ApiToken, IdempotencyKey
from mailgate.tracker.tokens import create_token, list_tokens, revoke_token
from mailgate.tracker.users import DEMO_ADMIN, ensure_demo_admin, set_user
from mailgate.web.app import create_app
from tests.support.clock import FakeClock


def _client(ctx: Context, token: str | None = None) -> httpx2.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(ctx, run_workers=False)),
        base_url=ctx.settings.base_url,
        headers=headers,
    )


async def test_anonymous_and_bad_tokens_get_401_problems(ctx: Context) -> None:
    async with _client(ctx) as client:
        answer = await client.get("/api/v1/issues")
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        body = answer.json()
        assert body["status"] == 401 and "mailgate token create" in body["detail"]
    async with _client(ctx, "mgt_not-a-real-token") as client:
        answer = await client.get("/api/v1/me")
        assert answer.status_code == 401 and "not valid" in answer.json()["detail"]


async def test_a_token_acts_as_its_user_until_revoked(
    ctx: Context, admin_api: httpx2.AsyncClient, clock: FakeClock
) -> None:
    made = await admin_api.post(
        "/tokens", json={"user": "api-admin@example.com", "name": "chat bot"}
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert token.startswith("mgt_") and made.json()["hint"].endswith("…")
    stored = await ctx.db.read(lambda s: s.scalars(select(ApiToken.token_hash)).all())
    assert token not in str(stored)  # only hashes are kept
    async with _client(ctx, token) as client:
        me = await client.get("/api/v1/me")
        assert me.json() == {"email": "api-admin@example.com", "role": "admin"}
        listed = {t["id"]: t for t in await list_tokens(ctx)}
        assert listed[made.json()["id"]]["last_used_at"] is not None
        assert token not in (await admin_api.get("/tokens")).text
        await revoke_token(ctx, made.json()["id"])
        assert (await client.get("/api/v1/me")).status_code == 401


async def test_an_agents_token_has_the_agents_role(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    assert (await agent_api.get("/me")).json()["role"] == "agent"
    refused = await agent_api.get("/tokens")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    await set_user(ctx, "api-agent@example.com", disabled=True)
    assert (await agent_api.get("/me")).status_code == 401  # a disabled user's tokens stop


async def test_a_token_needs_no_csrf_token(ctx: Context, admin_api: httpx2.AsyncClient) -> None:
    _, token = await create_token(ctx, "api-admin@example.com", "script")
    async with _client(ctx, token) as client:
        answer = await client.post(
            "/api/v1/tokens", json={"user": "api-admin@example.com", "name": "second"}
        )
        assert answer.status_code == 201


async def test_the_openapi_description_is_there_for_a_token(
    admin_api: httpx2.AsyncClient,
) -> None:
    description = (await admin_api.get("/openapi.json")).json()
    assert description["openapi"].startswith("3.1")
    assert "/me" in description["paths"] and "/tokens" in description["paths"]


async def test_a_path_the_api_mount_cannot_take_is_still_a_problem(
    admin_api: httpx2.AsyncClient,
) -> None:
    """An encoded line break: the mount's pattern does not match across lines, so the main app
    answers, and under /api/ it answers as the API does."""
    answer = await admin_api.get("/projects/a%0Ab")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_retried_token_request_gets_the_same_token_kept_encrypted(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    ask = {"user": "api-admin@example.com", "name": "retried"}
    headers = {"idempotency-key": "token-1"}
    first = await admin_api.post("/tokens", json=ask, headers=headers)
    again = await admin_api.post("/tokens", json=ask, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["token"] == first.json()["token"]
    assert [t["name"] for t in await list_tokens(ctx)].count("retried") == 1
    kept = await ctx.db.read(lambda s: s.scalars(select(IdempotencyKey.response)).all())
    assert kept and first.json()["token"] not in str(kept)  # the kept answer is sealed
    assert (await admin_api.post("/tokens/99999999999/revoke")).status_code == 422


async def test_a_demo_admins_token_ends_with_the_demo(ctx: Context) -> None:
    """A token made by the demo admin under `serve --demo` is no key to the same database
    served for real."""
    await ensure_demo_admin(ctx, DEMO_ADMIN)
    _, token = await create_token(ctx, DEMO_ADMIN, "made in the demo")
    async with _client(ctx, token) as client:
        assert (await client.get("/api/v1/me")).status_code == 401


async def test_a_trailing_slash_redirects_to_the_base_url_not_the_host(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    answer = await admin_api.get("/issues/", headers={"host": "evil.example"})
    assert answer.status_code == 307
    assert answer.headers["location"] == ctx.settings.base_url + "/api/v1/issues"


@pytest.mark.parametrize(
    "query",
    [
        "cursor=" + "W" * 5000,
        "cursor="
        + "WyJ1cGRhdGVkIiwiZGVzYyIsIjIwMjYtMDEtMDFUMDA6MDA6MDArMDA6MDAiLDEwMDAwMDAwMDAwMDAwMDAwMDAwXQ",
        "updated_since=0001-01-01T00:00:00%2B14:00",
        "updated_since=9999-12-31T23:59:59-14:00",
    ],
)
async def test_odd_cursors_and_times_are_bad_input_not_a_crash(
    agent_api: httpx2.AsyncClient, query: str
) -> None:
    answer = await agent_api.get(f"/issues?{query}")
    assert answer.status_code in (400, 422), answer.text
