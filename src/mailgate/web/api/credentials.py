"""`/api/v1/credentials`: the accounts authorized under an integration, as `mailgate
credential` lists, shows, refreshes and revokes them — never a token.

A credential is made by signing the account in, which happens in a browser: Authorize, Device
code or App-only token on the integration's page (`/integrations/NAME`), or `mailgate
integration authorize` on the server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from mailgate.context import Context
from mailgate.oauth.credentials import (
    credential_view,
    list_credentials,
    refresh_credential,
    revoke_credential,
    show_credential,
)
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, admin_only, page_of
from mailgate.web.api.shared import REACHING_OUT, Id

DESCRIPTION = """\
The accounts authorized under an integration, with their status — never a token. A credential
is made by signing the account in, in a browser: Authorize, Device code or App-only token on the
integration's page (`/integrations/NAME`), or `mailgate integration authorize` on the server.
"""


class Credential(BaseModel):
    """A credential as `credential list --json` shows it: never a token."""

    id: int
    integration: str
    account: str = Field(description="The signed-in address, or the app for an app-only token.")
    grant_type: str
    status: str = Field(description="active, needs-reauthorization, refresh-failing or revoked.")
    scopes: list[str]
    expires_at: str | None = Field(description="When the access token expires.")
    last_refresh_at: str | None
    last_error: str | None
    failure_count: int
    next_attempt_at: str | None
    has_refresh_token: bool
    refresh_token_issued_at: str | None
    created_at: str | None


class CredentialEvent(BaseModel):
    at: str
    event: str
    detail: str | None


class CredentialDetail(Credential):
    """A credential with its history (`credential show --json`), newest first."""

    history: list[CredentialEvent]


class Refreshed(Credential):
    ok: bool = Field(description="Whether the provider gave a new access token.")
    error: str | None = Field(default=None, description="Why not, when it did not.")


class Revoked(CredentialDetail):
    revoked_at_provider: bool = Field(
        description="Whether the provider confirmed the revocation (RFC 7009); Microsoft "
        "offers none, so there the tokens are only forgotten."
    )


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/credentials",
        tags=["credentials"],
        responses=PROBLEMS,
        dependencies=[Depends(admin_only)],
    )

    @routes.get("", description=DESCRIPTION)
    async def credentials(
        integration: Annotated[
            str | None, Query(max_length=200, description="Only this integration's.")
        ] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[Credential]:
        """Every credential, oldest first."""
        rows = [
            Credential(**credential_view(cred, name))
            for cred, name in await list_credentials(ctx, integration)
        ]
        return page_of(rows, cursor, limit, key=lambda credential: credential.id)

    @routes.get("/{credential_id}")
    async def credential(credential_id: Id) -> CredentialDetail:
        """One credential and its history."""
        return CredentialDetail(**await show_credential(ctx, credential_id))

    @routes.post("/{credential_id}/refresh", responses=REACHING_OUT)
    async def refresh(credential_id: Id) -> Refreshed:
        """Refresh the access token now (`mailgate credential refresh`). A provider that
        refuses, or cannot be reached, gives `ok` false and the `error`."""
        return Refreshed(**await refresh_credential(ctx, credential_id))

    @routes.post("/{credential_id}/revoke", responses=REACHING_OUT)
    async def revoke(credential_id: Id) -> Revoked:
        """Revoke the credential (`mailgate credential revoke`): its tokens are forgotten, and
        revoked at the provider when it offers revocation. Mailboxes and SMTP servers that sign
        in with it stop until the account is authorized again."""
        remote = await revoke_credential(ctx, credential_id)
        return Revoked(**await show_credential(ctx, credential_id), revoked_at_provider=remote)

    return routes
