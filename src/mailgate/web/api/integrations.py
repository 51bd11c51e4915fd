"""`/api/v1/integrations`: OAuth 2.0 clients registered at a provider, as `mailgate
integration` lists, adds, changes, tests and deletes them.

The client secret is write-only: a body may give it, no answer ever holds it (`client_secret_set`
and `client_secret_expires` say what there is to know). Authorizing an account stays in the
browser (the Integrations page), where the provider's sign-in happens.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mailgate.context import Context
from mailgate.oauth.check import check_integration
from mailgate.oauth.integrations import (
    IntegrationOptions,
    add_integration,
    delete_integration,
    integration_view,
    integration_warnings,
    list_integrations,
    set_integration,
    show_integration,
)
from mailgate.store.models import User
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, admin_only, page_of
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async
from mailgate.web.api.shared import (
    LONG_TEXT,
    NAME_PATTERN,
    NAMED,
    REACHING_OUT,
    Body,
    ConnectionCheck,
)

Url = Annotated[str, Field(max_length=LONG_TEXT)]
Scope = Annotated[str, Field(min_length=1, max_length=500)]


IntegrationName = Annotated[str, Path(pattern=NAME_PATTERN, description=NAMED, examples=["m365"])]


class Integration(BaseModel):
    """An integration as `integration show --json` shows it: never the client secret."""

    name: str
    provider: str
    client_id: str
    client_secret_set: bool
    client_secret_expires: str | None = Field(description="YYYY-MM-DD, when the admin gave it.")
    client_secret_expires_in_days: int | None
    tenant: str | None
    cloud: str | None
    account_type: str | None
    uses: list[str]
    authority: str | None
    discovery_url: str | None
    issuer: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    device_authorization_endpoint: str | None
    revocation_endpoint: str | None
    redirect_url: str = Field(description="Register this URL at the provider.")
    scopes: list[str]
    app_scopes: list[str]
    token_auth: str
    auth_params: dict[str, str]
    status: str = Field(
        description="ok, secret-expiring, secret-expired or client-rejected (see `problem`)."
    )
    problem: str | None
    credentials: int = Field(description="How many accounts are authorized under it.")
    created_at: str
    updated_at: str
    warnings: list[str] = Field(description="What the admin should act on soon.")


class IntegrationFields(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"client_secret": "the new secret's value", "client_secret_expires": "2027-12-31"}
            ]
        }
    )

    client_id: str | None = Field(default=None, max_length=500)
    client_secret: str | None = Field(
        default=None,
        max_length=LONG_TEXT,
        description="Write-only: stored encrypted, never returned (`client_secret_set` says "
        "whether there is one).",
    )
    client_secret_expires: date | None = Field(
        default=None, description="When the secret expires (warned about 14 days ahead)."
    )
    tenant: str | None = Field(
        default=None,
        max_length=200,
        description="Microsoft: common, organizations, consumers or a tenant ID or domain.",
    )
    cloud: Literal["global", "usgov", "china"] | None = None
    account_type: Literal["work", "personal"] | None = None
    uses: list[Literal["imap", "pop", "smtp"]] | None = Field(
        default=None, max_length=3, description="Microsoft: what the scopes are for."
    )
    authority: Url | None = None
    discovery_url: Url | None = Field(
        default=None, description="Generic: OpenID Connect or RFC 8414 discovery URL."
    )
    authorization_endpoint: Url | None = None
    token_endpoint: Url | None = None
    device_authorization_endpoint: Url | None = None
    scopes: list[Scope] | None = Field(default=None, max_length=50)
    app_scopes: list[Scope] | None = Field(default=None, max_length=50)
    token_auth: Literal["client_secret_basic", "client_secret_post"] | None = None

    def options(self, provider: str | None = None) -> IntegrationOptions:
        values: dict[str, Any] = self.given()
        values.pop("name", None)
        values.pop("provider", None)
        return IntegrationOptions(provider=provider, **values)


class NewIntegration(IntegrationFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "google",
                    "provider": "google",
                    "client_id": "1234-example.apps.googleusercontent.com",
                    "client_secret": "GOCSPX-example-secret",
                    "client_secret_expires": "2027-06-30",
                }
            ]
        }
    )

    name: str = Field(max_length=100)
    provider: Literal["microsoft", "google", "generic"]


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/integrations",
        tags=["integrations"],
        responses=PROBLEMS,
        dependencies=[Depends(admin_only)],
    )

    async def shown(name: str) -> Integration:
        view, warnings = await show_integration(ctx, name)
        return Integration(**view, warnings=warnings)

    @routes.get("")
    async def integrations(cursor: Cursor = None, limit: Limit = 50) -> Page[Integration]:
        """Every integration, by name."""
        now = ctx.clock()
        rows = [
            Integration(
                **integration_view(row, ctx.settings.redirect_url, now, count),
                warnings=integration_warnings(row, now),
            )
            for row, count in await list_integrations(ctx)
        ]
        return page_of(rows, cursor, limit, key=lambda integration: integration.name)

    @routes.get("/{name}")
    async def integration(name: IntegrationName) -> Integration:
        """One integration, with the redirect URL to register at the provider."""
        return await shown(name)

    @routes.post("", status_code=201, response_model=Integration, responses=REACHING_OUT)
    async def new_integration(
        request: Request,
        given: NewIntegration,
        user: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Register an OAuth 2.0 client (`mailgate integration add`): the Microsoft and Google
        presets fill the endpoints and scopes; a generic provider needs its discovery URL or
        its endpoints (mailgate reads the discovery document at once)."""

        async def create() -> tuple[int, Integration]:
            await add_integration(ctx, given.name, given.options(given.provider))
            return 201, await shown(given.name)

        return await once_async(request, ctx, user, idempotency_key, create)

    @routes.patch("/{name}", responses=REACHING_OUT)
    async def change_integration(name: IntegrationName, change: IntegrationFields) -> Integration:
        """Change an integration (`mailgate integration set`), e.g. a new client secret: only
        what the body gives; its credentials and the mailboxes using them stay."""
        await set_integration(ctx, name, change.options())
        return await shown(name)

    @routes.delete("/{name}", status_code=204, response_class=Response)
    async def remove_integration(
        name: IntegrationName,
        force: Annotated[
            bool, Query(description="Also delete its credentials (authorized accounts).")
        ] = False,
    ) -> Response:
        """Delete an integration (`mailgate integration delete`); refused while a mailbox
        signs in with one of its credentials."""
        await delete_integration(ctx, name, force=force)
        return Response(status_code=204)

    @routes.post("/{name}/test", responses=REACHING_OUT)
    async def test_integration(name: IntegrationName) -> ConnectionCheck:
        """Test connection (`mailgate integration test`): the endpoints answer and the provider
        accepts the client ID and secret, checked without signing anyone in. `ok` false with
        the failed step and its diagnosis when not."""
        return ConnectionCheck(**(await check_integration(ctx, name)).as_json())

    return routes
