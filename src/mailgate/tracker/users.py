"""The people who sign in to the web UI: admins and agents, their passwords and one-time links.

- Passwords are kept as argon2id hashes (`argon2-cffi`), rehashed when the parameters change.
- A user added without a password gets a one-time link, valid 24 hours, where they choose one;
  the same link resets a forgotten password. The first `serve` of an empty database prints a
  link that creates the first admin. Only a token's SHA-256 is stored.
- A password change, a role change and disabling a user end that user's sessions.
- The last enabled admin can't be disabled or made an agent: someone must be able to sign in.
- Every change is in the audit log, in the same transaction.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailgate import actor
from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store import audit
from mailgate.store.models import SignInFailure, User, UserLink, WebSession
from mailgate.store.vocabulary import LinkPurpose, Role

T = TypeVar("T")
DEMO_ADMIN = "demo-admin@mailgate.invalid"  # `serve --demo` signs every visitor in as them
LINK_LIFETIME = timedelta(hours=24)
LINK_PATH = "/welcome"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # hashing is costly by design: bound what a request can make it hash
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

HASHER = PasswordHasher()  # argon2id with the library's recommended parameters


def token_id(token: str) -> str:
    """What is stored of a token: its SHA-256, so the database alone signs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email) or len(email) > 320:
        raise BadInput(
            f"{email!r} is not an email address: give the address the user signs in with."
        )
    return email


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise BadInput(f"Role {role!r} is not known: use admin or agent.") from None


def check_password(password: str, email: str | None = None) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise BadInput(f"The password is too long: use at most {MAX_PASSWORD} characters.")
    if email is not None and password.strip().lower() == email:
        raise BadInput("The password is the email address: choose another.")
    return password


# argon2 costs tens of milliseconds and 64 MiB a call on purpose: it runs on threads of its own,
# two at a time, so a flood of sign-ins can't take the threads every database call runs on.
_ARGON2 = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
MAX_WAITING_CHECKS = 16
_waiting = 0


class TooBusy(BadInput):
    """More password checks are waiting than the server lets wait."""


async def on_argon2_threads(work: Callable[[], T], *, refuse_when_busy: bool = False) -> T:
    """Run `work` (a hash or a check) on the argon2 threads; when `refuse_when_busy`, refuse
    rather than queue behind MAX_WAITING_CHECKS others (sign-in attempts from anyone)."""
    global _waiting
    if refuse_when_busy and _waiting >= MAX_WAITING_CHECKS:
        raise TooBusy("Too many sign-ins at once: try again in a few seconds.")
    _waiting += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_ARGON2, work)
    finally:
        _waiting -= 1


async def hash_password(password: str) -> str:
    """argon2id: hashing takes tens of milliseconds on purpose."""
    return await on_argon2_threads(lambda: HASHER.hash(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches. An unknown user is checked against a dummy hash, so both
    answers take as long."""
    try:
        return HASHER.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy() -> str:
    """A hash to check an unknown user's password against, made once, on the first such check
    (not at import: it costs half a second, which every process, workers too, would pay)."""
    return HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: datetime


def _new_link(session: Session, ctx: Context, purpose: LinkPurpose, user: User | None) -> Link:
    token = secrets.token_urlsafe(32)
    now = ctx.clock()
    if user is not None:  # one live link per user: a new one replaces the old
        session.execute(delete(UserLink).where(UserLink.user_id == user.id))
    session.add(
        UserLink(
            id=token_id(token),
            purpose=purpose,
            user_id=None if user is None else user.id,
            created_at=now,
            expires_at=now + LINK_LIFETIME,
        )
    )
    return Link(f"{ctx.settings.base_url}{LINK_PATH}/{token}", now + LINK_LIFETIME)


def find_user(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email.strip().lower())).first()


def get_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise NotFound(f"No user {email!r}: see `mailgate user list`.")
    return user


def _enabled_admins(session: Session) -> int:
    query = select(func.count()).select_from(User)
    return int(session.scalar(query.where(User.role == Role.ADMIN, ~User.disabled)) or 0)


def _end_sessions(session: Session, user: User) -> None:
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def failure_keys(email: str, address: str | None) -> dict[str, str]:
    """The keys failed sign-ins are counted under (`tracker.sessions`): the account typed, the
    account from this address, and the address."""
    account = email.strip().lower()[:320]
    keys = {"account": f"account:{account}"}
    if address:
        keys["pair"] = f"pair:{account}|{address}"
        keys["address"] = f"address:{address}"
    return keys


def _forget_failures(session: Session, email: str) -> None:
    """A new password starts with a clean slate for its account (the address keys stay)."""
    account = email.strip().lower()
    session.execute(
        delete(SignInFailure).where(
            (SignInFailure.key == f"account:{account}")
            | SignInFailure.key.startswith(f"pair:{account}|", autoescape=True)
        )
    )


async def add_user(
    ctx: Context, email: str, role: str = Role.AGENT, password: str | None = None
) -> tuple[User, Link | None]:
    """A new user: with a password, or with a one-time link where they choose one."""
    email, role = check_email(email), check_role(role)
    password_hash = (
        None if password is None else await hash_password(check_password(password, email))
    )

    def add(session: Session) -> tuple[User, Link | None]:
        if find_user(session, email) is not None:
            raise BadInput(f"A user {email} already exists: change it with `mailgate user set`.")
        now = ctx.clock()
        user = User(
            email=email,
            role=role,
            password_hash=password_hash,
            created_at=now,
            password_changed_at=now if password_hash else None,
        )
        session.add(user)
        session.flush()
        audit.record(session, now, "user.add", email, f"role {role}")
        link = None if password_hash else _new_link(session, ctx, LinkPurpose.SET_PASSWORD, user)
        return user, link

    return await ctx.db.run(add)


async def set_user(
    ctx: Context,
    email: str,
    *,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's role, password or whether they may sign in; their sessions end."""
    new_role = None if role is None else check_role(role)
    email = email.strip().lower()
    password_hash = (
        None if password is None else await hash_password(check_password(password, email))
    )

    def change(session: Session) -> User:
        user = get_user(session, email)
        now, changes = ctx.clock(), []
        if new_role is not None and new_role != user.role:
            changes.append(f"role {user.role} → {new_role}")
            user.role = new_role
        if password_hash is not None:
            changes.append("password changed")
            user.password_hash, user.password_changed_at = password_hash, now
            _forget_failures(session, user.email)
        if disabled is not None and disabled != user.disabled:
            changes.append("disabled" if disabled else "enabled")
            user.disabled = disabled
        session.flush()
        if _enabled_admins(session) == 0:
            raise BadInput(
                f"{email} is the last enabled admin: make another user admin first, so someone "
                "can still sign in to configure mailgate."
            )
        if changes:
            _end_sessions(session, user)
            audit.record(session, now, "user.set", email, "; ".join(changes))
        return user

    return await ctx.db.run(change)


async def disable_user(ctx: Context, email: str) -> User:
    return await set_user(ctx, email, disabled=True)


async def password_link(ctx: Context, email: str) -> Link:
    """A one-time link where the user chooses a new password (the old one works until then)."""

    def make(session: Session) -> Link:
        user = get_user(session, email)
        audit.record(session, ctx.clock(), "user.password-link", user.email)
        return _new_link(session, ctx, LinkPurpose.SET_PASSWORD, user)

    return await ctx.db.run(make)


async def list_users(ctx: Context) -> list[User]:
    def read(session: Session) -> list[User]:
        return list(session.scalars(select(User).order_by(User.email)))

    return await ctx.db.run(read)


async def pending_links(ctx: Context) -> dict[str, datetime]:
    """Each user with a one-time link not yet used nor expired: their email → its expiry."""

    def read(session: Session) -> dict[str, datetime]:
        rows = session.execute(
            select(User.email, UserLink.expires_at)
            .join(UserLink, UserLink.user_id == User.id)
            .where(UserLink.expires_at > ctx.clock())
        )
        return {email: expires_at for email, expires_at in rows}

    return await ctx.db.run(read)


def user_view(user: User) -> dict[str, Any]:
    """A user as `user list --json` and the users page show it: never the hash."""
    return {
        "email": user.email,
        "role": user.role,
        "disabled": user.disabled,
        "password_set": user.password_hash is not None,
        "created_at": user.created_at.isoformat(),
        "last_sign_in_at": user.last_sign_in_at.isoformat() if user.last_sign_in_at else None,
    }


def admin_can_sign_in(session: Session) -> bool:
    """Whether some enabled admin has a password (the demo admin, for one, has none)."""
    query = select(func.count()).select_from(User)
    query = query.where(User.role == Role.ADMIN, ~User.disabled, User.password_hash.is_not(None))
    return bool(session.scalar(query))


async def first_admin_link(ctx: Context) -> Link | None:
    """While no admin can sign in, a new link that creates the first admin (earlier ones stop
    working); None once one can."""

    def make(session: Session) -> Link | None:
        if admin_can_sign_in(session):
            return None
        session.execute(delete(UserLink).where(UserLink.purpose == LinkPurpose.FIRST_ADMIN))
        return _new_link(session, ctx, LinkPurpose.FIRST_ADMIN, None)

    return await ctx.db.run(make)


async def ensure_demo_admin(ctx: Context, email: str) -> User:
    """`serve --demo`: the admin every visitor is signed in as (no password: nobody signs in
    as them any other way)."""

    def ensure(session: Session) -> User:
        user = find_user(session, email)
        if user is None:
            user = User(email=email, role=Role.ADMIN, created_at=ctx.clock())
            session.add(user)
            session.flush()
        return user

    return await ctx.db.run(ensure)


@dataclass(frozen=True)
class LinkView:
    """What a one-time link's page needs: whom it is for, or that it makes the first admin."""

    purpose: LinkPurpose
    email: str | None


BAD_LINK = (
    "This link is not valid: it was used already, has expired, or was mistyped. Ask an admin "
    "for a new one (`mailgate user set EMAIL` or the Users page)."
)


def _live_link(session: Session, ctx: Context, token: str) -> tuple[UserLink, User | None]:
    link = session.get(UserLink, token_id(token))
    if link is None or link.expires_at <= ctx.clock():
        raise BadInput(BAD_LINK)
    user = None if link.user_id is None else session.get(User, link.user_id)
    if link.purpose == LinkPurpose.SET_PASSWORD and (user is None or user.disabled):
        raise BadInput(BAD_LINK)
    return link, user


async def look_at_link(ctx: Context, token: str) -> LinkView:
    """What a link is for, changing nothing (a mail scanner may open it first)."""

    def look(session: Session) -> LinkView:
        link, user = _live_link(session, ctx, token)
        return LinkView(LinkPurpose(link.purpose), None if user is None else user.email)

    return await ctx.db.run(look)


async def use_link(ctx: Context, token: str, password: str, email: str | None = None) -> User:
    """Set the password the link is for (or create the first admin with `email`); the link is
    spent. Returns the user, who may now sign in."""
    view = await look_at_link(ctx, token)
    first = view.purpose == LinkPurpose.FIRST_ADMIN
    email = check_email(email or "") if first else view.email
    password_hash = await hash_password(check_password(password, email))

    def use(session: Session) -> User:
        link, user = _live_link(session, ctx, token)  # again: it may have been used meanwhile
        now = ctx.clock()
        # Spent first: of two uses at once, the second deletes nothing (on PostgreSQL it waits
        # for the first to commit) and is refused.
        spent = session.execute(delete(UserLink).where(UserLink.id == link.id))
        if getattr(spent, "rowcount", 0) != 1:
            raise BadInput(BAD_LINK)
        if link.purpose == LinkPurpose.FIRST_ADMIN:
            if admin_can_sign_in(session) or email is None:
                raise BadInput(BAD_LINK)
            user = find_user(session, email)
            if user is None:
                user = User(email=email, role=Role.ADMIN, created_at=now)
                session.add(user)
            user.role, user.disabled = Role.ADMIN, False
            audit.record(session, now, "user.add", email, "first admin, by the start link")
        assert user is not None
        user.password_hash, user.password_changed_at = password_hash, now
        session.flush()
        _end_sessions(session, user)
        _forget_failures(session, user.email)
        actor.act_as(actor.Actor(user.email, actor.current().address))  # it is them now
        audit.record(session, now, "user.password-set", user.email, "by a one-time link")
        return user

    return await ctx.db.run(use)
