"""`/api/v1/smtp-servers`: outgoing mail servers, as `mailgate smtp` lists, adds, changes,
tests and deletes them — never the password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mailgate.context import Context
from mailgate.mail.smtp_servers import (
    SmtpOptions,
    add_smtp,
    delete_smtp,
    get_smtp,
    list_smtp,
    set_smtp,
    smtp_view,
)
from mailgate.outbound.smtp_test import probe_smtp
from mailgate.store.models import User
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, admin_only, page_of
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async
from mailgate.web.api.shared import (
    NAME_PATTERN,
    NAMED,
    REACHING_OUT,
    Body,
    ConnectionCheck,
    EndpointFields,
)

SmtpName = Annotated[str, Path(pattern=NAME_PATTERN, description=NAMED, examples=["outgoing"])]


class SmtpServer(BaseModel):
    """An SMTP server as `smtp list --json` shows it: never the password."""

    name: str
    host: str
    port: int
    security: str
    username: str
    auth: str = Field(description="oauth2 or password.")
    credential: int | None
    sasl_mechanism: str
    ca_file: str | None
    from_address: str = Field(alias="from", description="The address mail is sent as.")
    from_name: str | None
    status: str
    last_check_at: str | None
    last_error: str | None
    warnings: list[str]


class SmtpFields(EndpointFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"from_name": "Contoso support"}]})

    from_address: str | None = Field(
        default=None, alias="from", max_length=320, description="Default: the login."
    )
    from_name: str | None = Field(
        default=None, max_length=200, description="Default: the project's name."
    )

    def options(self) -> SmtpOptions:
        given = {name: value for name, value in self.given().items() if value is not None}
        return SmtpOptions(
            host=given.get("host"),
            port=given.get("port"),
            security=given.get("security"),
            username=given.get("username"),
            credential_id=given.get("credential"),
            password=given.get("password"),
            ca_file=given.get("ca_file"),
            sasl_mechanism=given.get("sasl"),
            from_address=given.get("from_address"),
            from_name=given.get("from_name"),
        )


class NewSmtpServer(SmtpFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "relay",
                    "host": "smtp.example.com",
                    "port": 587,
                    "security": "starttls",
                    "username": "support@example.com",
                    "password": "the relay's password",
                    "from": "support@example.com",
                }
            ]
        }
    )

    name: str = Field(max_length=100)


class TestMessage(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"to": "you@example.com"}]})

    to: str = Field(max_length=320, description="Where the test message goes.")


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/smtp-servers",
        tags=["smtp-servers"],
        responses=PROBLEMS,
        dependencies=[Depends(admin_only)],
    )

    async def shown(name: str) -> SmtpServer:
        async with ctx.db.session() as session:
            return SmtpServer(**smtp_view(await get_smtp(session, name)))

    @routes.get("")
    async def smtp_servers(cursor: Cursor = None, limit: Limit = 50) -> Page[SmtpServer]:
        """Every SMTP server, by name, with its status."""
        rows = [SmtpServer(**smtp_view(row)) for row in await list_smtp(ctx)]
        return page_of(rows, cursor, limit, key=lambda server: server.name)

    @routes.get("/{name}")
    async def smtp_server(name: SmtpName) -> SmtpServer:
        """One SMTP server."""
        return await shown(name)

    @routes.post("", status_code=201, response_model=SmtpServer)
    async def new_smtp_server(
        request: Request,
        given: NewSmtpServer,
        user: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Add an SMTP server (`mailgate smtp add`)."""

        async def create() -> tuple[int, dict[str, object]]:
            await add_smtp(ctx, given.name, given.options())
            return 201, (await shown(given.name)).model_dump(by_alias=True)

        return await once_async(request, ctx, user, idempotency_key, create)

    @routes.patch("/{name}")
    async def change_smtp_server(name: SmtpName, change: SmtpFields) -> SmtpServer:
        """Change an SMTP server (`mailgate smtp set`): only what the body gives."""
        await set_smtp(ctx, name, change.options())
        return await shown(name)

    @routes.delete("/{name}", status_code=204, response_class=Response)
    async def remove_smtp_server(name: SmtpName) -> Response:
        """Delete an SMTP server (`mailgate smtp delete`); refused while a project sends
        through it by name."""
        await delete_smtp(ctx, name)
        return Response(status_code=204)

    @routes.post("/{name}/test", responses=REACHING_OUT)
    async def test_smtp_server(name: SmtpName, message: TestMessage) -> ConnectionCheck:
        """Send a test message (`mailgate smtp test --json`): resolve, connect, tls, greeting,
        token, authenticate, send; the steps after a failed one are not run."""
        return ConnectionCheck(**(await probe_smtp(ctx, name, message.to)).as_json())

    return routes
