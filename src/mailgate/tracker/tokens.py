"""API tokens: a user's key to the REST API, with that user's role.

- A token is shown once, when it is made (`mailgate token create`, or the Account page); only its
  SHA-256 is kept, with its first characters as a hint to tell tokens apart.
- It works while it is not revoked and its user is enabled; a role change takes effect at once,
  since the role is the user's, read at every request.
- Its last use (when, from which address) is recorded, at most once a minute per token, so a
  busy script does not turn every read into a write.
- Making and revoking one is in the audit log.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store import audit
from mailgate.store.models import ApiToken, User
from mailgate.store.vocabulary import Role
from mailgate.tracker.users import get_user, token_id

PREFIX = "mgt_"  # lets secret scanners and people recognise a mailgate token
HINT_LENGTH = 8
MAX_TOKENS = 50  # live tokens per user
USE_RECORDED_EVERY = timedelta(minutes=1)


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > 100:
        raise BadInput(
            "Give the token a name of 1 to 100 characters that says what uses it (e.g. 'chat bot')."
        )
    return name


async def create_token(ctx: Context, email: str, name: str) -> tuple[dict[str, Any], str]:
    """A new token for the user; returns its view and the token itself (shown this once)."""
    name = check_name(name)
    token = PREFIX + secrets.token_urlsafe(32)

    def create(session: Session) -> dict[str, Any]:
        user = get_user(session, email)
        if user.disabled:
            raise BadInput(f"{user.email} is disabled: enable the user before giving them a token.")
        live = session.scalars(
            select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        ).all()
        if len(live) >= MAX_TOKENS:
            raise BadInput(
                f"{user.email} has {MAX_TOKENS} tokens already: revoke one they no longer use."
            )
        now = ctx.clock()
        row = ApiToken(
            user_id=user.id,
            name=name,
            token_hash=token_id(token),
            hint=token[: len(PREFIX) + HINT_LENGTH],
            created_at=now,
        )
        session.add(row)
        session.flush()
        audit.record(session, now, "token.create", user.email, f"token {row.id} ({name})")
        return token_view(row, user)

    return await ctx.db.run(create), token


async def list_tokens(ctx: Context, email: str | None = None) -> list[dict[str, Any]]:
    """Every token (a user's only, when given), newest first; revoked ones too."""

    def listing(session: Session) -> list[dict[str, Any]]:
        query = (
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .order_by(ApiToken.id.desc())
        )
        if email is not None:
            query = query.where(User.id == get_user(session, email).id)
        return [token_view(token, user) for token, user in session.execute(query).all()]

    return await ctx.db.read(listing)


async def revoke_token(
    ctx: Context, token_number: int, *, owner: str | None = None
) -> dict[str, Any]:
    """Revoke a token at once; `owner` given, only if it is that user's (a user revoking their
    own from the Account page). Revoking a revoked token is no error."""

    def revoke(session: Session) -> dict[str, Any]:
        found = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.id == token_number)
        ).first()
        if found is None or (owner is not None and found[1].email != owner.strip().lower()):
            raise NotFound(f"No token {token_number}: `mailgate token list` shows them.")
        token, user = found
        if token.revoked_at is None:
            token.revoked_at = ctx.clock()
            audit.record(
                session,
                token.revoked_at,
                "token.revoke",
                user.email,
                f"token {token.id} ({token.name})",
            )
        return token_view(token, user)

    return await ctx.db.run(revoke)


async def user_of_token(ctx: Context, token: str, address: str | None) -> User | None:
    """The enabled user a live token belongs to, or None; records the token's use."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    digest = token_id(token)

    def look(session: Session) -> tuple[ApiToken, User] | None:
        found = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest)
        ).first()
        return None if found is None else (found[0], found[1])

    found = await ctx.db.read(look)
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or user.disabled or user.role not in tuple(Role):
        return None
    now = ctx.clock()
    if row.last_used_at is None or now - row.last_used_at >= USE_RECORDED_EVERY:

        def used(session: Session) -> None:
            stored = session.get(ApiToken, row.id)
            if stored is not None:
                stored.last_used_at, stored.last_used_address = now, address

        await ctx.db.run(used)
    return user


def token_view(token: ApiToken, user: User) -> dict[str, Any]:
    """A token as lists show it: never the token, only its hint."""
    return {
        "id": token.id,
        "user": user.email,
        "name": token.name,
        "hint": token.hint + "…",
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "last_used_address": token.last_used_address,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }
