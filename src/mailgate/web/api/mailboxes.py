"""`/api/v1/mailboxes`: incoming mail servers (IMAP, POP3), as `mailgate mailbox` lists, adds,
changes, tests and deletes them — never the password.

A body's fields are the long options of `mailbox add` without dashes, as in `mailbox import`
(`password` in place of `--password-file`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mailgate.context import Context
from mailgate.inbound.mailbox_import import (
    ImportRefused,
    import_mailboxes,
    mailbox_options_of,
    read_entries,
)
from mailgate.inbound.mailboxes import (
    MAX_MESSAGE_BYTES,
    MAX_POLL_SECONDS,
    MailboxOptions,
    add_mailbox,
    delete_mailbox,
    get_mailbox,
    list_mailboxes,
    mailbox_view,
    set_mailbox,
)
from mailgate.runtime.probe import probe
from mailgate.store.models import User
from mailgate.web.api.common import (
    PROBLEM_JSON,
    PROBLEMS,
    Cursor,
    Limit,
    Page,
    admin_only,
    page_of,
    problem,
)
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async
from mailgate.web.api.shared import (
    LONG_TEXT,
    MAX_ID,
    NAME_PATTERN,
    NAMED,
    REACHING_OUT,
    ConnectionCheck,
    EndpointFields,
)

Count = Annotated[int, Field(ge=0, le=MAX_ID)]


MailboxName = Annotated[str, Path(pattern=NAME_PATTERN, description=NAMED, examples=["support"])]


class Mailbox(BaseModel):
    """A mailbox as `mailbox show --json` shows it: never the password."""

    name: str
    protocol: str
    host: str
    port: int
    security: str
    username: str
    auth: str = Field(description="oauth2 or password.")
    credential: int | None
    sasl_mechanism: str
    ca_file: str | None
    folder: str
    project: str
    handler: str
    after: str
    poll_seconds: int
    idle: bool
    backlog: str
    max_message_bytes: int
    route_options: dict[str, Any] = Field(description="The handler's options that were given.")
    status: str = Field(
        description="idle, polling, connected, failing, auth-failed, needs-reauthorization or "
        "new (not yet tried)."
    )
    last_check_at: str | None
    last_error: str | None
    processed: int
    quarantined: int
    created_at: str | None
    warnings: list[str]


class MailboxFields(EndpointFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"poll": 120, "after": "move:Done"}]})

    protocol: Literal["imap", "pop3"] | None = None
    folder: str | None = Field(default=None, max_length=255, description="IMAP: default INBOX.")
    project: str | None = Field(default=None, max_length=50, description="Where mail lands.")
    handler: Literal["create-or-comment", "create", "comment"] | None = None
    after: str | None = Field(
        default=None, max_length=300, description="seen (default), delete or move:FOLDER."
    )
    poll: int | None = Field(
        default=None, ge=1, le=MAX_POLL_SECONDS, description="Poll interval in seconds."
    )
    idle: bool | None = Field(default=None, description="Use IMAP IDLE when offered.")
    backlog: Literal["unseen", "all", "none"] | None = Field(
        default=None, description="What of the mail already there a new mailbox takes."
    )
    max_message_bytes: int | None = Field(default=None, ge=1, le=MAX_MESSAGE_BYTES)
    bulk: str | None = Field(
        default=None, max_length=400, description="ignore, accept, delete or forward:ADDRESS."
    )
    non_participants: Literal["new-issue", "hold", "comment"] | None = None
    comments_from_participants_only: bool | None = None
    cc_watchers: bool | None = None
    max_cc_watchers: Count | None = None
    keys_of_other_projects: bool | None = None
    max_comments_per_issue_hour: Count | None = None
    catch_address: str | None = Field(default=None, max_length=320)
    create_customers: bool | None = None
    whole_body: bool | None = None
    split_regex: str | None = Field(default=None, max_length=LONG_TEXT)
    quarantine_dmarc_fail: bool | None = None
    max_per_sender_hour: Count | None = None
    max_attachment_bytes: Count | None = None
    max_attachments_bytes: Count | None = None

    def options(self) -> MailboxOptions:
        return mailbox_options_of(self.given())


class NewMailbox(MailboxFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "sales",
                    "protocol": "imap",
                    "host": "outlook.office365.com",
                    "username": "sales@contoso.example",
                    "credential": 1,
                    "project": "HELP",
                }
            ]
        }
    )

    name: str = Field(max_length=100)


class ImportedMailboxes(BaseModel):
    """What an import did (`mailbox import --json`), and warnings for the admin."""

    added: list[str] = Field(description="The names of the mailboxes added.")
    updated: list[str] = Field(description="The names of the mailboxes that existed, changed.")
    warnings: list[str]


class EntryError(BaseModel):
    index: int = Field(description="The entry's place in the array, counting from 1.")
    name: str | None = Field(description="Its name, when it has one.")
    error: str = Field(description="What is wrong with it, as `mailbox add` says it.")


class ImportProblem(BaseModel):
    """An import refused, nothing stored (RFC 9457): `errors` lists every bad entry; a body
    that is no JSON array of objects has none."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[EntryError] | None = None


# The body of an import: what POST /mailboxes takes, many at once. It is read by the import's
# own rules (`inbound/mailbox_import.py`), so that a bad entry gets the sentence `mailbox add`
# would say, and every bad entry is listed, not only the first.
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/components/schemas/NewMailbox"},
                }
            }
        },
    }
}


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/mailboxes",
        tags=["mailboxes"],
        responses=PROBLEMS,
        dependencies=[Depends(admin_only)],
    )

    async def shown(name: str) -> Mailbox:
        async with ctx.db.session() as session:
            return Mailbox(**mailbox_view(await get_mailbox(session, name)))

    @routes.get("")
    async def mailboxes(cursor: Cursor = None, limit: Limit = 50) -> Page[Mailbox]:
        """Every mailbox, by name, with its status."""
        rows = [Mailbox(**mailbox_view(row)) for row in await list_mailboxes(ctx)]
        return page_of(rows, cursor, limit, key=lambda mailbox: mailbox.name)

    @routes.get("/{name}")
    async def mailbox(name: MailboxName) -> Mailbox:
        """One mailbox."""
        return await shown(name)

    @routes.post("", status_code=201, response_model=Mailbox)
    async def new_mailbox(
        request: Request,
        given: NewMailbox,
        user: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Add a mailbox (`mailgate mailbox add`), checked whole before it is stored; it is
        read within seconds."""

        async def create() -> tuple[int, Mailbox]:
            await add_mailbox(ctx, given.name, given.options())
            return 201, await shown(given.name)

        return await once_async(request, ctx, user, idempotency_key, create)

    @routes.post(
        "/import",
        response_model=ImportedMailboxes,
        responses={400: {"model": ImportProblem, "content": {PROBLEM_JSON: {}}}},
        openapi_extra=IMPORT_BODY,
    )
    async def import_many(
        request: Request,
        user: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Add or change many mailboxes at once (`mailgate mailbox import`), all or nothing: a
        new name is added as by POST /mailboxes, an existing one changed as by PATCH. When any
        entry is wrong nothing is stored, and the 400 problem lists each bad entry in
        `errors`."""
        entries = read_entries(await request.body(), "The body")

        async def create() -> tuple[int, ImportedMailboxes]:
            done = await import_mailboxes(ctx, entries)
            return 200, ImportedMailboxes(**done.as_json(), warnings=done.warnings)

        try:
            return await once_async(request, ctx, user, idempotency_key, create)
        except ImportRefused as refused:
            errors = [entry.as_json() for entry in refused.problems]
            return problem(400, refused.summary, errors=errors)

    @routes.patch("/{name}")
    async def change_mailbox(name: MailboxName, change: MailboxFields) -> Mailbox:
        """Change a mailbox (`mailgate mailbox set`): only what the body gives. It keeps its
        UID state, so no mail is taken twice."""
        await set_mailbox(ctx, name, change.options())
        return await shown(name)

    @routes.delete("/{name}", status_code=204, response_class=Response)
    async def remove_mailbox(name: MailboxName) -> Response:
        """Delete a mailbox (`mailgate mailbox delete`); the mail on the server stays."""
        await delete_mailbox(ctx, name)
        return Response(status_code=204)

    @routes.post("/{name}/test", responses=REACHING_OUT)
    async def test_mailbox(name: MailboxName) -> ConnectionCheck:
        """Test connection (`mailgate mailbox test --json`): resolve, connect, tls, greeting,
        token, authenticate, select (stat for POP3), count; the steps after a failed one are
        not run, and `diagnosis` says what to do."""
        return ConnectionCheck(**(await probe(ctx, name)).as_json())

    return routes
