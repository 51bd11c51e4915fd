"""`Idempotency-Key` on every POST that creates something: the same key from the same user
again gets the first answer, and nothing is created twice.

- Where the creation is one transaction of the tracker (a comment), the key is stored in that
  same transaction (`once`): the comment and its key are committed together or not at all, and
  two requests racing with one key meet the key's unique constraint, so one of them is undone.
- Where the creation checks things over the network first (an integration's discovery, a
  mailbox), the key is reserved before and completed after (`once_async`); a second request
  while the first is still being answered gets 409 and may retry. Names are unique there too,
  so a lost answer can't make two of anything.
- The same key with another request (method, path or body) is refused (422): it is a bug in the
  client. Keys are kept 24 hours: an older one is as good as new.
- A request is recognized by a fingerprint of its method, path and body keyed with the secret
  box's keys (an HMAC, never a bare hash: bodies hold passwords and client secrets, which a plain
  SHA-256 in the database would let anyone reading it test guesses against at hash speed). A
  fingerprint made under any configured key matches, so a retry still matches after a key
  rotation until the old key is dropped.
- An answer that holds a secret shown once (a new API token, a webhook's secret, a one-time
  link) is kept encrypted with the secret box (`holds_secret=True`), like every other secret.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import IdempotencyKey, User
from mailgate.store.secretbox import SEALED
from mailgate.unit import Unit
from mailgate.web.api.common import problem

KEPT = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Send the same value again (a retry) to get the first answer, creating "
        "nothing new.",
    ),
]

Answer = tuple[int, Any]  # the status code and the JSON body


_PURPOSE = b"mailgate idempotency fingerprint"


async def fingerprints(ctx: Context, request: Request) -> list[str]:
    """The request's fingerprint under each configured key, the newest key's first (the one
    stored)."""
    body = await request.body()
    return ctx.secrets.digests(_PURPOSE, f"{request.method}\n{request.url.path}\n".encode() + body)


def _stored(session: Session, user_id: int, key: str, now: datetime) -> IdempotencyKey | None:
    """The key's record unless it is older than `KEPT` (it is deleted with the next one
    stored)."""
    return session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at >= now - KEPT,
        )
    ).first()


def _kept(ctx: Context, body: Any, holds_secret: bool) -> str:
    text = json.dumps(body)
    return SEALED + ctx.secrets.encrypt(text) if holds_secret else text


def _replay(ctx: Context, row: IdempotencyKey, prints: list[str]) -> JSONResponse:
    if row.fingerprint not in prints:
        return problem(
            422,
            "This Idempotency-Key was sent with another request: use a new key for each new "
            "request, and the same key only to retry the same one.",
        )
    if row.status_code is None:
        answer = problem(
            409,
            "A request with this Idempotency-Key is still being answered: retry in a few seconds.",
        )
        answer.headers["retry-after"] = "2"
        return answer
    kept = row.response or "null"
    if kept.startswith(SEALED):
        kept = ctx.secrets.decrypt(kept.removeprefix(SEALED))
    return JSONResponse(json.loads(kept), status_code=row.status_code)


async def once(
    request: Request,
    ctx: Context,
    user: User,
    key: str | None,
    create: Callable[[Unit], Answer],
) -> JSONResponse:
    """`create(unit)` in one transaction with the key's record (none without a key)."""
    prints = await fingerprints(ctx, request)
    replay: list[JSONResponse] = []

    def transaction(unit: Unit) -> Answer:
        if key is not None:
            row = _stored(unit.session, user.id, key, unit.now())
            if row is not None:
                replay.append(_replay(ctx, row, prints))
                return 0, None
        status, body = create(unit)
        encoded = jsonable_encoder(body)
        if key is not None:
            _forget_old(unit)
            unit.session.add(
                IdempotencyKey(
                    user_id=user.id,
                    key=key,
                    fingerprint=prints[0],
                    status_code=status,
                    response=json.dumps(encoded),
                    created_at=unit.now(),
                )
            )
            unit.session.flush()
        return status, encoded

    try:
        status, body = await Unit.run(ctx, transaction)
    except IntegrityError:
        if key is None:
            raise
        # Another request with this key committed first: this one's work was undone.
        row = await ctx.db.read(_stored, user.id, key, ctx.clock())
        if row is None:
            raise
        return _replay(ctx, row, prints)
    if replay:
        return replay[0]
    return JSONResponse(body, status_code=status)


async def once_async(
    request: Request,
    ctx: Context,
    user: User,
    key: str | None,
    create: Callable[[], Awaitable[Answer]],
    *,
    holds_secret: bool = False,
) -> JSONResponse:
    """`await create()`, its key reserved before and its answer kept after (encrypted when it
    holds a secret)."""
    if key is None:
        status, body = await create()
        return JSONResponse(jsonable_encoder(body), status_code=status)
    prints = await fingerprints(ctx, request)

    def reserve(unit: Unit) -> IdempotencyKey | None:
        row = _stored(unit.session, user.id, key, unit.now())
        if row is not None:
            return row
        _forget_old(unit)
        unit.session.add(
            IdempotencyKey(user_id=user.id, key=key, fingerprint=prints[0], created_at=unit.now())
        )
        return None

    try:
        earlier = await Unit.run(ctx, reserve)
    except IntegrityError:
        earlier = await ctx.db.read(_stored, user.id, key, ctx.clock())
    if earlier is not None:
        return _replay(ctx, earlier, prints)
    try:
        status, body = await create()
    except BaseException:
        await ctx.db.run(_release, user.id, key)  # nothing was created: the key may be reused
        raise
    encoded = jsonable_encoder(body)

    def complete(session: Session) -> None:
        row = _stored(session, user.id, key, ctx.clock())
        if row is not None:
            row.status_code, row.response = status, _kept(ctx, encoded, holds_secret)

    await ctx.db.run(complete)
    return JSONResponse(encoded, status_code=status)


def _release(session: Session, user_id: int, key: str) -> None:
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code.is_(None),
        )
    )


def _forget_old(unit: Unit) -> None:
    unit.session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < unit.now() - KEPT)
    )
