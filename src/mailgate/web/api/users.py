"""`/api/v1/users`: the people who sign in, as `mailgate user` lists, adds and changes them —
never a password or its hash. A user added without a password, or sent a reset, gets a one-time
link (valid 24 hours) where they choose one: the answer holds it, to pass on to them. The answer
kept for a retry with the same Idempotency-Key holds the link encrypted."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import User
from mailgate.tracker.users import (
    MAX_PASSWORD,
    Link,
    add_user,
    get_user,
    list_users,
    password_link,
    set_user,
    user_view,
)
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, admin_only, page_of
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async
from mailgate.web.api.shared import Body

Email = Annotated[
    str,
    Path(
        max_length=320,
        description="The address the user signs in with.",
        examples=["agent@example.com"],
    ),
]
Role = Literal["admin", "agent"]


class UserView(BaseModel):
    """A user as `user list --json` shows them."""

    email: str
    role: str
    disabled: bool
    password_set: bool
    created_at: str
    last_sign_in_at: str | None


class OneTimeLink(BaseModel):
    url: str = Field(description="Where the user chooses a password; it works once.")
    expires_at: str


class NewUserAnswer(UserView):
    link: OneTimeLink | None = Field(
        description="When no password was given: the link to send the user."
    )


class NewUser(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "new-agent@example.com", "role": "agent"}]}
    )

    email: str = Field(max_length=320)
    role: Role = "agent"
    password: str | None = Field(
        default=None,
        max_length=MAX_PASSWORD,
        description="Write-only. Without it, the answer holds a one-time link instead.",
    )


class UserChange(Body):
    """Only the fields given change; the user's sessions end."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    role: Role | None = None
    disabled: bool | None = Field(default=None, description="true: they can no longer sign in.")
    password: str | None = Field(default=None, max_length=MAX_PASSWORD, description="Write-only.")


def _link(link: Link) -> OneTimeLink:
    return OneTimeLink(url=link.url, expires_at=link.expires_at.isoformat())


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/users", tags=["users"], responses=PROBLEMS, dependencies=[Depends(admin_only)]
    )

    def view(session: Session, email: str) -> UserView:
        return UserView(**user_view(get_user(session, email)))

    @routes.get("")
    async def users(cursor: Cursor = None, limit: Limit = 50) -> Page[UserView]:
        """Every user, by address."""
        rows = [UserView(**user_view(user)) for user in await list_users(ctx)]
        return page_of(rows, cursor, limit, key=lambda user: user.email)

    @routes.get("/{email}")
    async def user(email: Email) -> UserView:
        """One user."""
        return await ctx.db.read(view, email.strip().lower())

    @routes.post("", status_code=201, response_model=NewUserAnswer)
    async def new_user(
        request: Request,
        given: NewUser,
        caller: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Add a user (`mailgate user add`): with a password, or with a one-time link in the
        answer where they choose one."""

        async def create() -> tuple[int, NewUserAnswer]:
            user, link = await add_user(ctx, given.email, given.role, given.password)
            return 201, NewUserAnswer(**user_view(user), link=_link(link) if link else None)

        # Kept for a retry encrypted: the one-time link is a secret.
        return await once_async(request, ctx, caller, idempotency_key, create, holds_secret=True)

    @routes.patch("/{email}")
    async def change_user(email: Email, change: UserChange) -> UserView:
        """Change a user's role, password, or whether they may sign in (`mailgate user set`,
        `user disable`); their sessions end. The last enabled admin stays one."""
        user = await set_user(
            ctx, email, role=change.role, password=change.password, disabled=change.disabled
        )
        return UserView(**user_view(user))

    @routes.post("/{email}/reset")
    async def reset(email: Email) -> OneTimeLink:
        """A new one-time link where the user chooses a new password (`mailgate user set
        --reset`); the old password works until then."""
        return _link(await password_link(ctx, email.strip().lower()))

    return routes
