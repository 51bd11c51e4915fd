"""Signing in to the web UI: checking a password, slowing guesses, and server-side sessions.

- A failed sign-in is counted against the client's address, the account typed from that address,
  and the account typed from anywhere (known or not). From the fifth failure in a row, each key is
  blocked for a time that doubles with each further failure (1 s, 2 s, 4 s …): at most 15 minutes
  for an address or an account from one address, at most 30 s for an account from anywhere (so
  nobody can keep its owner locked out). An hour without failures forgets them; a new password
  clears its account's counts. Every refusal says the same sentence, so an answer never tells
  whether an account exists.
- A session is a random token in a cookie; the database keeps its SHA-256, when it began and
  when it was last used. It ends after `IDLE` unused or `ABSOLUTE` after sign-in, at sign-out,
  and when the user's password, role or status changes. Each sign-in makes a new session (an id
  planted before sign-in is never promoted).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailgate import actor
from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store import audit
from mailgate.store.models import SignInFailure, User, WebSession
from mailgate.tracker.users import (
    HASHER,
    MAX_PASSWORD,
    failure_keys,
    find_user,
    on_argon2_threads,
    token_id,
    verify_password,
)

IDLE = timedelta(hours=12)
ABSOLUTE = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=1)  # last use is written at most this often
FREE_FAILURES = 4
MAX_BLOCK = timedelta(minutes=15)  # an address, or an account from one address
# An account from anywhere: long enough to slow guessing spread over many addresses, too short
# for anyone to keep its owner locked out.
ACCOUNT_MAX_BLOCK = timedelta(seconds=30)
FORGET_AFTER = timedelta(hours=1)

REFUSED = "The email address or the password is not right."


class SignInRefused(BadInput):
    """A sign-in that failed; the message never says which part was wrong."""


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # for the cookie; never stored
    session: WebSession


def _row(session: Session, key: str, now: datetime) -> SignInFailure:
    """The key's counter, locked for this transaction (PostgreSQL), made if missing; two
    first failures at once don't both insert it."""
    query = select(SignInFailure).where(SignInFailure.key == key).with_for_update()
    row = session.scalars(query).first()
    if row is None:
        try:
            with session.begin_nested():
                row = SignInFailure(key=key, failures=0, last_failure_at=now)
                session.add(row)
        except IntegrityError:
            row = session.scalars(query).one()
    elif now - row.last_failure_at > FORGET_AFTER:
        row.failures, row.blocked_until = 0, None
    return row


def _blocked_for(session: Session, keys: dict[str, str], now: datetime) -> timedelta | None:
    rows = session.scalars(select(SignInFailure).where(SignInFailure.key.in_(keys.values())))
    waits = [r.blocked_until - now for r in rows if r.blocked_until and r.blocked_until > now]
    return max(waits) if waits else None


def _count(row: SignInFailure, now: datetime, longest: timedelta) -> None:
    row.failures += 1
    row.last_failure_at = now
    beyond = row.failures - FREE_FAILURES
    if beyond > 0:
        seconds = min(2.0 ** min(beyond - 1, 30), longest.total_seconds())
        row.blocked_until = now + timedelta(seconds=seconds)


def _uncount(row: SignInFailure) -> None:
    row.failures = max(0, row.failures - 1)
    if row.failures <= FREE_FAILURES:
        row.blocked_until = None


def _throttled(wait: timedelta) -> SignInRefused:
    seconds = max(1, int(wait.total_seconds() + 0.999))
    return SignInRefused(
        f"Too many failed sign-ins: wait {seconds} second{'s' if seconds != 1 else ''} and try "
        "again."
    )


async def _check(
    ctx: Context, email: str, password: str, address: str | None, action: str
) -> User | None:
    """Whether `password` is `email`'s, counted against the throttle: the attempt is counted as
    a failure *before* the password is checked (so attempts sent at once can't all slip past a
    block) and taken back when it was right. Returns the user, or None; raises SignInRefused
    while blocked."""
    keys = failure_keys(email, address)

    def attempt(session: Session) -> User | None:
        now = ctx.clock()
        wait = _blocked_for(session, keys, now)
        if wait is not None:
            raise _throttled(wait)
        for kind, key in keys.items():
            _count(
                _row(session, key, now), now, ACCOUNT_MAX_BLOCK if kind == "account" else MAX_BLOCK
            )
        return find_user(session, email)

    user = await ctx.db.run(attempt)
    stored = None if user is None else user.password_hash
    right = await on_argon2_threads(
        lambda: verify_password(stored, password[:MAX_PASSWORD]), refuse_when_busy=True
    )
    ok = right and user is not None and not user.disabled

    def settle(session: Session) -> None:
        now = ctx.clock()
        if not ok:
            audit.record(session, now, f"{action}-failed", email.strip().lower()[:320])
            return
        assert user is not None
        session.execute(
            delete(SignInFailure).where(
                SignInFailure.key.in_([keys["account"], keys.get("pair", "")])
            )
        )
        if "address" in keys:
            _uncount(_row(session, keys["address"], now))

    await ctx.db.run(settle)
    return user if ok else None


async def sign_in(ctx: Context, email: str, password: str, address: str | None) -> SignedIn:
    """Check the password and start a session, or raise SignInRefused (one sentence for every
    wrong password, unknown account and disabled user)."""
    user = await _check(ctx, email, password, address, "user.sign-in")
    if user is None:
        raise SignInRefused(REFUSED)

    def start(session: Session) -> SignedIn:
        now = ctx.clock()
        row = session.get(User, user.id)
        assert row is not None
        row.last_sign_in_at = now
        actor.act_as(actor.Actor(row.email, address))  # it is them now
        audit.record(session, now, "user.sign-in", row.email)
        return _start(session, row, address, now)

    signed_in = await ctx.db.run(start)
    if user.password_hash and _needs_rehash(user.password_hash):
        await _rehash(ctx, user.id, password[:MAX_PASSWORD])
    return signed_in


async def confirm_password(ctx: Context, user: User, password: str, address: str | None) -> bool:
    """A signed-in user's current password, checked under the same throttle as a sign-in (a
    stolen session must not become a way to guess it)."""
    return await _check(ctx, user.email, password, address, "user.password-check") is not None


def _needs_rehash(password_hash: str) -> bool:
    try:
        return HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


async def _rehash(ctx: Context, user_id: int, password: str) -> None:
    new_hash = await on_argon2_threads(lambda: HASHER.hash(password))

    def store(session: Session) -> None:
        row = session.get(User, user_id)
        if row is not None:
            row.password_hash = new_hash

    await ctx.db.run(store)


def _start(session: Session, user: User, address: str | None, now: datetime) -> SignedIn:
    token = secrets.token_urlsafe(32)
    row = WebSession(
        id=token_id(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        address=address,
    )
    session.add(row)
    return SignedIn(user, token, row)


async def start_session(ctx: Context, user: User, address: str | None) -> SignedIn:
    """A session for a user who just proved who they are another way (a one-time link, the
    demo)."""

    def start(session: Session) -> SignedIn:
        row = session.get(User, user.id)
        assert row is not None
        return _start(session, row, address, ctx.clock())

    return await ctx.db.run(start)


async def load_session(ctx: Context, token: str) -> tuple[WebSession, User] | None:
    """The live session and its user for a cookie's token, or None (expired ones are deleted)."""

    def load(session: Session) -> tuple[WebSession, User] | None:
        row = session.get(WebSession, token_id(token))
        if row is None:
            return None
        now = ctx.clock()
        user = session.get(User, row.user_id)
        expired = now - row.last_seen_at > IDLE or now - row.created_at > ABSOLUTE
        if user is None or user.disabled or expired:
            session.delete(row)
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now
        return row, user

    return await ctx.db.run(load)


async def end_session(ctx: Context, token: str) -> None:
    def end(session: Session) -> None:
        row = session.get(WebSession, token_id(token))
        if row is not None:
            user = session.get(User, row.user_id)
            audit.record(
                session, ctx.clock(), "user.sign-out", None if user is None else user.email
            )
            session.delete(row)

    await ctx.db.run(end)


async def take_flash(ctx: Context, session_id: str) -> str | None:
    """The message left for the next page, once."""

    def take(session: Session) -> str | None:
        row = session.get(WebSession, session_id)
        if row is None or row.flash is None:
            return None
        text, row.flash = row.flash, None
        return text

    return await ctx.db.run(take)


async def leave_flash(ctx: Context, session_id: str, text: str) -> None:
    def leave(session: Session) -> None:
        row = session.get(WebSession, session_id)
        if row is not None:
            row.flash = text[:2000]

    await ctx.db.run(leave)


async def prune_sessions(ctx: Context) -> int:
    """Delete expired sessions and forgotten failure counts; returns how many sessions went."""

    def prune(session: Session) -> int:
        now = ctx.clock()
        gone = session.execute(
            delete(WebSession).where(
                (WebSession.last_seen_at < now - IDLE) | (WebSession.created_at < now - ABSOLUTE)
            )
        )
        session.execute(
            delete(SignInFailure).where(SignInFailure.last_failure_at < now - FORGET_AFTER)
        )
        return int(getattr(gone, "rowcount", 0) or 0)

    return await ctx.db.run(prune)
