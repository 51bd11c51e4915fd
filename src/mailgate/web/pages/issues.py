"""The agents' desk for issues: `/issues` (search, filters and sort as a GET form, so every view
is a bookmarkable URL; keyset pages) and `/issues/KEY-N` (the issue as a conversation, with the
comment box, Close/Reopen and Assign), on the service functions of `mailgate issue`; the
attachments' downloads and pictures' previews (`web.downloads`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store.vocabulary import IssueStatus
from mailgate.tracker.attachments import AttachmentFile, attachment_file
from mailgate.tracker.issues import (
    assign,
    comment_as_user,
    desk_choices,
    desk_query,
    issue_view,
    set_status,
)
from mailgate.tracker.search import search_issues
from mailgate.web import downloads
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, form_values, render, signed_in, whole_number

PAGE_SIZE = 50
# The list's GET form: each field's name in the URL, and its value when none is given.
FILTERS = {
    "q": "",
    "project": "",
    "status": "",
    "reporter": "",
    "assignee": "",
    "attachments": "",
    "since": "",
    "sort": "updated",
    "order": "desc",
}


def issue_href(key: str) -> str:
    return f"/issues/{quote(key, safe='')}"


def _times(row: dict[str, Any], *fields: str) -> dict[str, Any]:
    """A JSON row's ISO times as datetimes, for the pages' `when()`."""
    return {**row, **{f: datetime.fromisoformat(row[f]) if row.get(f) else None for f in fields}}


def conversation(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The description then every comment, in order, each with the attachments it came with
    and where it came from (a message has a Message-ID; the web and the CLI leave none)."""
    by_entry: dict[int | None, list[dict[str, Any]]] = {}
    for attachment in view["attachments"]:
        by_entry.setdefault(attachment["comment"], []).append(attachment)
    first = {
        "id": None,
        "author": view["reporter"],
        "body": view["description"],
        "created_at": view["created_at"],
        "source_message_id": view["source_message_id"],
        "sender_authentication": view["sender_authentication"],
    }
    return [
        {**_times(entry, "created_at"), "attachments": by_entry.get(entry["id"], [])}
        for entry in [first, *view["comments"]]
    ]


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/issues", include_in_schema=False)
    async def issues_page(request: Request) -> Response:
        user, _ = signed_in(request)
        given = request.query_params
        form = {name: given.get(name, default).strip() for name, default in FILTERS.items()}
        cursor = given.get("cursor") or None
        values: dict[str, Any] = {
            "title": "Issues",
            "form": form,
            "choices": await ctx.db.read(desk_choices),
            "filtered": any(form[name] != FILTERS[name] for name in FILTERS),
        }
        try:
            query = desk_query(
                user.email,
                text=form["q"],
                project=form["project"],
                status=form["status"],
                reporter=form["reporter"],
                assignee=form["assignee"],
                has_attachments=form["attachments"],
                updated_since=form["since"],
                sort=form["sort"],
                order=form["order"],
            )
            found = await ctx.db.read(search_issues, query, cursor=cursor, limit=PAGE_SIZE)
        except BadInput as problem:
            values.update(error=str(problem), issues=[])
            return await render(request, ctx, "issues.html", values, status_code=400)
        kept = {name: value for name, value in form.items() if value != FILTERS[name]}
        values.update(
            issues=[_times(item, "created_at", "updated_at") for item in found.items],
            next_page="/issues?" + urlencode({**kept, "cursor": found.next})
            if found.next
            else None,
            first_page=("/issues?" + urlencode(kept)).rstrip("?") if cursor else None,
        )
        return await render(request, ctx, "issues.html", values)

    async def issue_page(
        request: Request,
        key: str,
        *,
        comment: str = "",
        error: str | None = None,
        error_for: str = "comment",
    ) -> Response:
        """The issue page; after a refused form, its sentence beside that form (`error_for`:
        comment or assign) and the comment as typed."""
        try:
            view = await ctx.db.read(issue_view, key)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/issues", "All issues")
        values = {
            "title": f"{view['key']} {view['summary']}",
            "issue": _times(view, "created_at", "updated_at"),
            "href": issue_href(view["key"]),
            "entries": conversation(view),
            "choices": await ctx.db.read(desk_choices),
            "comment": comment,
            "error": error,
            "error_for": error_for,
        }
        return await render(request, ctx, "issue.html", values, status_code=400 if error else 200)

    @routes.get("/issues/{key}", include_in_schema=False)
    async def show(request: Request, key: str) -> Response:
        return await issue_page(request, key)

    @routes.post("/issues/{key}/comments", include_in_schema=False)
    async def comment(request: Request, key: str) -> Response:
        user, _ = signed_in(request)
        body = (await form_values(request)).get("body", "")
        try:
            commented = await comment_as_user(ctx, key, body, user.email)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/issues", "All issues")
        except BadInput as problem:
            return await issue_page(request, key, comment=body, error=str(problem))
        told = commented.notified
        mailed = f" and mailed to {told} {'person' if told == 1 else 'people'}" if told else ""
        return await done(request, ctx, issue_href(key), f"Comment added{mailed}.")

    async def change(request: Request, key: str, status: IssueStatus) -> Response:
        user, _ = signed_in(request)
        try:
            await set_status(ctx, key, status, by=user.email)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/issues", "All issues")
        return await done(request, ctx, issue_href(key), f"{key} is {status}.")

    @routes.post("/issues/{key}/close", include_in_schema=False)
    async def close(request: Request, key: str) -> Response:
        return await change(request, key, IssueStatus.CLOSED)

    @routes.post("/issues/{key}/reopen", include_in_schema=False)
    async def reopen(request: Request, key: str) -> Response:
        return await change(request, key, IssueStatus.OPEN)

    @routes.post("/issues/{key}/assign", include_in_schema=False)
    async def assign_to(request: Request, key: str) -> Response:
        chosen = (await form_values(request)).get("assignee", "")
        try:
            await assign(ctx, key, chosen or None)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/issues", "All issues")
        except BadInput as problem:
            return await issue_page(request, key, error=str(problem), error_for="assign")
        whom = chosen.strip().lower() or "nobody"
        return await done(request, ctx, issue_href(key), f"{key} is assigned to {whom}.")

    async def serve(
        request: Request,
        key: str,
        given: str,
        answer: Callable[[AttachmentFile], Response | None],
    ) -> Response:
        """An attachment of the issue `key` as `answer` serves it; 404 for anything else."""
        number = whole_number(given)
        try:
            if number is None:
                raise NotFound(f"{key} has no attachment {given!r}: its page lists them.")
            shown = answer(await ctx.db.read(attachment_file, key, number))
            if shown is None:
                raise NotFound("This attachment is not a picture mailgate shows: download it.")
        except NotFound as problem:
            return await not_found(request, ctx, problem, issue_href(key), f"Back to {key}")
        return shown

    @routes.get("/issues/{key}/attachments/{given}", include_in_schema=False)
    async def download(request: Request, key: str, given: str) -> Response:
        return await serve(request, key, given, downloads.download)

    @routes.get("/issues/{key}/attachments/{given}/preview", include_in_schema=False)
    async def preview(request: Request, key: str, given: str) -> Response:
        return await serve(request, key, given, downloads.preview)

    return routes
