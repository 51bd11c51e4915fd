"""`/api/v1/issues`: the desk for programs — find issues, read one with its conversation, comment
(with `Idempotency-Key`), close, reopen, assign, download an attachment. The same service
functions as `mailgate issue` and the desk's pages; the fields are those of `issue list --json`
and `issue show --json`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store.models import User
from mailgate.store.vocabulary import IssueStatus
from mailgate.tracker.attachments import attachment_file
from mailgate.tracker.issues import (
    assign,
    comment_view,
    comments_page,
    desk_query,
    issue_view,
    set_status,
    write_comment,
)
from mailgate.tracker.search import search_issues
from mailgate.unit import Unit
from mailgate.web import downloads
from mailgate.web.api.common import (
    PROBLEMS,
    Cursor,
    Limit,
    Page,
    caller,
    decode_cursor,
    encode_cursor,
)
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once


class IssueItem(BaseModel):
    """An issue in a list: the fields of `issue list --json`, and more."""

    key: str
    project: str
    summary: str
    reporter: str = Field(description="The reporter's email address.")
    assignee: str | None = Field(description="The assigned user's email address, or null.")
    status: str
    created_at: str
    updated_at: str
    comments: int = Field(description="How many comments it has.")
    attachments: int = Field(description="How many attachments it has.")
    source_message_id: str | None = Field(description="The Message-ID of the mail that made it.")


class CommentItem(BaseModel):
    id: int
    author: str = Field(description="The author's email address.")
    body: str
    created_at: str
    source_message_id: str | None = Field(description="Set when the comment came by mail.")
    sender_authentication: str | None = Field(
        description="SPF, DKIM and DMARC results of the mail it came by ('spf=pass dkim=…')."
    )


class AttachmentItem(BaseModel):
    id: int
    filename: str
    content_type: str = Field(description="As the sender declared it.")
    size: int
    inline: bool
    sha256: str
    comment: int | None = Field(description="The comment it came with; null: the issue's mail.")
    image_type: str | None = Field(
        description="image/png, image/jpeg, image/gif or image/webp when its bytes are that "
        "picture (whatever the declared type); null for anything else."
    )
    url: str = Field(description="Where to download it.")


class IssueDetail(BaseModel):
    """An issue with its conversation: the fields of `issue show --json`."""

    key: str
    summary: str
    reporter: str
    assignee: str | None
    status: str
    created_at: str
    updated_at: str
    comments_count: int
    source_message_id: str | None
    description: str
    sender_authentication: str | None
    watchers: list[str]
    attachments: list[AttachmentItem]
    comments: list[CommentItem]


class NewComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(description="The comment's text; mailed to the reporter and watchers.")


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(
        max_length=320, description="An enabled user's email address, or null for nobody."
    )


IssueKey = Annotated[
    str,
    Path(
        pattern=r"^[A-Z][A-Z0-9_]{1,49}-[0-9]{1,10}$",
        description="The issue's key, e.g. HELP-12.",
        examples=["HELP-1"],
    ),
]
AttachmentId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]

_BYTES = {"schema": {"type": "string", "format": "binary"}}
DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The attachment's bytes, as a download (`Content-Disposition: "
        "attachment`): application/octet-stream, or the picture's type when its bytes are a "
        "PNG, JPEG, GIF or WebP picture.",
        "content": {kind: _BYTES for kind in (downloads.OCTET_STREAM, *downloads.IMAGE_TYPES)},
    }
}


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(prefix="/issues", tags=["issues"], responses=PROBLEMS)

    def detail(view: dict[str, Any]) -> IssueDetail:
        base = f"{ctx.settings.base_url.rstrip('/')}/api/v1/issues/{view['key']}/attachments/"
        attachments = [AttachmentItem(**a, url=f"{base}{a['id']}") for a in view["attachments"]]
        return IssueDetail(**{**view, "attachments": attachments})

    @routes.get("")
    async def find(
        user: Annotated[User, Depends(caller)],
        q: Annotated[str, Query(max_length=500, description="Words to search for.")] = "",
        project: Annotated[str, Query(max_length=50)] = "",
        status: Literal["open", "closed", "any"] = "any",
        reporter: Annotated[str, Query(max_length=320)] = "",
        assignee: Annotated[
            str,
            Query(max_length=320, description="An address, `me`, or `nobody`; none: anyone."),
        ] = "",
        has_attachments: bool | None = None,
        updated_since: Annotated[
            datetime | None, Query(description="A day (YYYY-MM-DD) or a time, ISO 8601.")
        ] = None,
        sort: Literal["updated", "created"] = "updated",
        order: Literal["desc", "asc"] = "desc",
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[IssueItem]:
        """Issues that match, newest activity first by default; `q` searches the summary,
        description, comments and reporter."""
        query = desk_query(
            user.email,
            text=q,
            project=project,
            status=status,
            reporter=reporter,
            assignee=assignee,
            has_attachments="" if has_attachments is None else str(has_attachments).lower(),
            updated_since=updated_since.isoformat() if updated_since else "",
            sort=sort,
            order=order,
        )
        found = await ctx.db.read(search_issues, query, cursor=cursor, limit=limit)
        return Page[IssueItem](items=[IssueItem(**i) for i in found.items], next=found.next)

    @routes.get("/{key}")
    async def show(key: IssueKey) -> IssueDetail:
        """An issue with its description, watchers, attachments and comments."""
        return detail(await ctx.db.read(issue_view, key))

    @routes.get("/{key}/comments")
    async def comments(
        key: IssueKey, cursor: Cursor = None, limit: Limit = 50
    ) -> Page[CommentItem]:
        """The issue's comments, oldest first."""
        after = decode_cursor(cursor) if cursor is not None else None
        if isinstance(after, str):
            raise BadInput("The cursor is not one this list gave: start again without it.")
        rows, last = await ctx.db.read(comments_page, key, after, limit)
        following = encode_cursor(last) if last is not None else None
        return Page[CommentItem](items=[CommentItem(**row) for row in rows], next=following)

    @routes.post("/{key}/comments", status_code=201, response_model=CommentItem)
    async def comment(
        request: Request,
        key: IssueKey,
        given: NewComment,
        user: Annotated[User, Depends(caller)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """An agent's comment, by the caller; the reporter and watchers get it by mail, threaded
        so their reply comes back to the issue."""

        def create(unit: Unit) -> tuple[int, CommentItem]:
            made = write_comment(unit, key, given.body, user.email, by_agent=True)
            return 201, CommentItem(**comment_view(unit.session, made.comment_id))

        return await once(request, ctx, user, idempotency_key, create)

    @routes.post("/{key}/close")
    async def close(key: IssueKey, user: Annotated[User, Depends(caller)]) -> IssueDetail:
        """Close the issue (the reporter and watchers are told); closing a closed one does
        nothing."""
        return detail(await set_status(ctx, key, IssueStatus.CLOSED, by=user.email))

    @routes.post("/{key}/reopen")
    async def reopen(key: IssueKey, user: Annotated[User, Depends(caller)]) -> IssueDetail:
        """Reopen the issue (the reporter and watchers are told)."""
        return detail(await set_status(ctx, key, IssueStatus.OPEN, by=user.email))

    @routes.post("/{key}/assign")
    async def assign_to(key: IssueKey, given: Assignment) -> IssueDetail:
        """Give the issue to an enabled user (agent or admin), or to nobody (null)."""
        return detail(await assign(ctx, key, given.assignee))

    @routes.get("/{key}/attachments/{attachment_id}", response_class=Response, responses=DOWNLOAD)
    async def attachment(key: IssueKey, attachment_id: AttachmentId) -> Response:
        """An attachment's bytes, always as a download."""
        return downloads.download(await ctx.db.read(attachment_file, key, attachment_id))

    return routes
