"""`Idempotency-Key`: what is kept of a request can't be used to test guesses of its body (a
password), a retry matches under any configured key, and a key is kept 24 hours, no longer."""

from __future__ import annotations

import hashlib
import json

import httpx2
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from mailgate.context import Context
from mailgate.store.models import Comment, IdempotencyKey, User
from mailgate.store.secretbox import SecretBox, read_key_file
from tests.support.clock import FakeClock
from tests.support.desk import desk_project, mailed, message

PASSWORD = "Tr0ub4dor&3 of the new agent"


async def stored_prints(ctx: Context) -> list[str]:
    return list(await ctx.db.read(lambda s: s.scalars(select(IdempotencyKey.fingerprint)).all()))


async def count(ctx: Context, model: type[Comment] | type[User]) -> int:
    return int(await ctx.db.read(lambda s: s.scalar(select(func.count()).select_from(model))))


async def test_the_kept_fingerprint_is_no_bare_hash_of_the_request(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    body = json.dumps({"email": "new@example.com", "role": "agent", "password": PASSWORD})
    headers = {"idempotency-key": "add-new", "content-type": "application/json"}
    first = await admin_api.post("/users", content=body.encode(), headers=headers)
    assert first.status_code == 201, first.text
    [kept] = await stored_prints(ctx)
    # What a reader of the database could recompute for each guessed password, were it a
    # plain SHA-256 of the method, the path (as the API or the app sees it) and the body.
    bare = {
        hashlib.sha256(f"POST\n{path}\n{body}".encode()).hexdigest()
        for path in ("/users", "/api/v1/users")
    }
    assert len(kept) == 64 and kept not in bare
    again = await admin_api.post("/users", content=body.encode(), headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert await count(ctx, User) == 2  # the token's admin and the one added, once


async def test_a_retry_matches_under_any_configured_key(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    ask = {"email": "new@example.com", "role": "agent", "password": PASSWORD}
    headers = {"idempotency-key": "add-new"}
    first = await admin_api.post("/users", json=ask, headers=headers)
    assert first.status_code == 201, first.text
    old_keys = read_key_file(ctx.settings.key_file)
    new_key = Fernet.generate_key()

    ctx.secrets = SecretBox([new_key, *old_keys])  # a new key first, the old one kept
    again = await admin_api.post("/users", json=ask, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()

    ctx.secrets = SecretBox([new_key])  # the key it was fingerprinted with is gone
    refused = await admin_api.post("/users", json=ask, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert await count(ctx, User) == 2


async def test_a_key_older_than_24_hours_is_not_replayed(
    ctx: Context, admin_api: httpx2.AsyncClient, clock: FakeClock
) -> None:
    ask = {"email": "first@example.com", "role": "agent", "password": PASSWORD}
    headers = {"idempotency-key": "daily"}
    assert (await admin_api.post("/users", json=ask, headers=headers)).status_code == 201
    clock.advance(hours=23)
    replayed = await admin_api.post("/users", json=ask, headers=headers)
    assert replayed.status_code == 201 and await count(ctx, User) == 2

    clock.advance(hours=1, seconds=1)
    # The same key with another request is new again, not refused as a client's mistake.
    other = {**ask, "email": "second@example.com"}
    made = await admin_api.post("/users", json=other, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["email"] == "second@example.com"
    assert await count(ctx, User) == 3
    assert len(await stored_prints(ctx)) == 1  # the old record was dropped for the new one


async def test_a_comment_retried_after_24_hours_is_a_new_comment(
    ctx: Context, agent_api: httpx2.AsyncClient, clock: FakeClock
) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    headers = {"idempotency-key": "comment-1"}
    ask = {"body": "On it."}
    first = await agent_api.post("/issues/HELP-1/comments", json=ask, headers=headers)
    assert first.status_code == 201, first.text
    again = await agent_api.post("/issues/HELP-1/comments", json=ask, headers=headers)
    assert again.json() == first.json() and await count(ctx, Comment) == 1

    clock.advance(hours=24, seconds=1)
    later = await agent_api.post("/issues/HELP-1/comments", json=ask, headers=headers)
    assert later.status_code == 201, later.text
    assert later.json()["id"] != first.json()["id"]
    assert await count(ctx, Comment) == 2
