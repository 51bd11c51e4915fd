"""`/api/v1/me` (who the token or session is) and `/api/v1/tokens` (the admin's view of every
API token: list, make one for a user, revoke)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mailgate.context import Context
from mailgate.store.models import User
from mailgate.tracker.tokens import create_token, list_tokens, revoke_token
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, admin_only, caller, page_of
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async


class Me(BaseModel):
    email: str
    role: str


class Token(BaseModel):
    """An API token as lists show it: never the token itself."""

    id: int
    user: str
    name: str
    hint: str = Field(description="The token's first characters, to tell tokens apart.")
    created_at: str
    last_used_at: str | None
    last_used_address: str | None
    revoked_at: str | None


class NewToken(BaseModel):
    user: str = Field(max_length=320, description="The email address of the token's user.")
    name: str = Field(max_length=100, description="What uses the token (e.g. 'chat bot').")


class CreatedToken(Token):
    token: str = Field(description="The token itself, shown this once: only its hash is kept.")


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(responses=PROBLEMS)

    @routes.get("/me", tags=["account"])
    async def me(user: Annotated[User, Depends(caller)]) -> Me:
        """Who this token (or session) acts as, and with which role."""
        return Me(email=user.email, role=user.role)

    @routes.get("/tokens", tags=["tokens"], dependencies=[Depends(admin_only)])
    async def tokens(cursor: Cursor = None, limit: Limit = 50) -> Page[Token]:
        """Every API token, newest first, revoked ones too."""
        rows = [Token(**row) for row in await list_tokens(ctx)]
        return page_of(rows, cursor, limit, key=lambda token: token.id)

    @routes.post(
        "/tokens",
        tags=["tokens"],
        status_code=201,
        response_model=CreatedToken,
        dependencies=[Depends(admin_only)],
    )
    async def new_token(
        request: Request,
        given: NewToken,
        user: Annotated[User, Depends(caller)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """A new token for a user, shown once in `token`."""

        async def create() -> tuple[int, CreatedToken]:
            view, token = await create_token(ctx, given.user, given.name)
            return 201, CreatedToken(**view, token=token)

        # Kept for a retry encrypted: the token is a secret.
        return await once_async(request, ctx, user, idempotency_key, create, holds_secret=True)

    @routes.post("/tokens/{token_id}/revoke", tags=["tokens"], dependencies=[Depends(admin_only)])
    async def revoke(token_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Token:
        """Revoke a token at once (revoking a revoked one changes nothing)."""
        return Token(**await revoke_token(ctx, token_id))

    return routes
