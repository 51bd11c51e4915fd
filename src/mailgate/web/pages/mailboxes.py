"""`/mailboxes` ("Incoming mail"): each mailbox with what it is doing now; add one, see and
change one, test its connection (the steps live), count what its backlog policy would take, and
delete it — `mailgate mailbox add|set|list|show|test|poll --dry-run|delete`, through the same
service functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import NotFound
from mailgate.inbound.mailboxes import (
    add_mailbox,
    delete_mailbox,
    get_mailbox,
    list_mailboxes,
    mailbox_view,
    set_mailbox,
)
from mailgate.mail.smtp_servers import credential_choices
from mailgate.runtime.overview import MailboxState, mailbox_states
from mailgate.runtime.poll import poll_mailbox
from mailgate.runtime.probe import probe
from mailgate.steps import StepReport
from mailgate.tracker.service import list_projects
from mailgate.web.pages.dashboard import ACTIVITY_STATUS
from mailgate.web.pages.mail_form import form_choices, password_warning
from mailgate.web.pages.mailbox_form import (
    AFTER_LABELS,
    BACKLOG_LABELS,
    BULK_LABELS,
    HANDLER_LABELS,
    NON_PARTICIPANT_LABELS,
    PROTOCOL_LABELS,
    ROUTE_NUMBERS,
    blank_form,
    options_from,
    stored_form,
)
from mailgate.web.pages.notfound import not_found
from mailgate.web.pages.server_page import action_page, added_page, changed_page, tested_page
from mailgate.web.shell import done, render


def mailbox_href(name: str) -> str:
    return f"/mailboxes/{quote(name, safe='')}"


async def _choices(ctx: Context) -> dict[str, Any]:
    """What the form offers: credentials, projects, and every list of choices."""
    return {
        **form_choices(await credential_choices(ctx)),
        "projects": [project.key for project in await list_projects(ctx)],
        "protocols": PROTOCOL_LABELS,
        "handlers": HANDLER_LABELS,
        "afters": AFTER_LABELS,
        "backlogs": BACKLOG_LABELS,
        "bulks": BULK_LABELS,
        "non_participants": NON_PARTICIPANT_LABELS,
        "route_numbers": ROUTE_NUMBERS,
    }


async def _stored(ctx: Context, name: str) -> dict[str, Any]:
    async with ctx.db.session() as session:
        return mailbox_view(await get_mailbox(session, name))


async def _state(ctx: Context, name: str) -> MailboxState | None:
    return next((state for state in await mailbox_states(ctx) if state.name == name), None)


async def new_page(
    request: Request,
    ctx: Context,
    form: Mapping[str, Any],
    *,
    error: str | None = None,
) -> Response:
    values = {
        "title": "Add an incoming mail server",
        "form": form,
        "error": error,
        "warn_password": password_warning(form),
        **await _choices(ctx),
    }
    return await render(request, ctx, "mailbox_new.html", values, status_code=400 if error else 200)


async def mailbox_page(
    request: Request,
    ctx: Context,
    name: str,
    *,
    form: Mapping[str, Any] | None = None,
    error: str | None = None,
    report: StepReport | None = None,
    count: list[int] | None = None,
    action_error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The mailbox's page: its state, its tests, and its settings' form (`form`: what was
    typed, after an error; else the stored settings)."""
    try:
        view = await _stored(ctx, name)
    except NotFound as problem:
        return await missing(request, ctx, problem)
    shown = form if form is not None else stored_form(view)
    values = {
        "title": f"Mailbox {name}",
        "view": view,
        "state": await _state(ctx, name),
        "activity_status": ACTIVITY_STATUS,
        "href": mailbox_href(name),
        "form": shown,
        "error": error,
        "warn_password": password_warning(shown),
        "report": report,
        "count": count,
        "action_error": action_error,
        **await _choices(ctx),
    }
    return await render(request, ctx, "mailbox.html", values, status_code=status_code)


async def missing(request: Request, ctx: Context, problem: NotFound) -> Response:
    return await not_found(request, ctx, problem, "/mailboxes", "All incoming mail servers")


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/mailboxes", include_in_schema=False)
    async def mailboxes_page(request: Request) -> Response:
        values = {
            "title": "Incoming mail",
            "states": await mailbox_states(ctx),
            "views": {row.name: mailbox_view(row) for row in await list_mailboxes(ctx)},
            "activity_status": ACTIVITY_STATUS,
        }
        return await render(request, ctx, "mailboxes.html", values)

    @routes.get("/mailboxes/new", include_in_schema=False)
    async def new_mailbox_page(request: Request) -> Response:
        return await new_page(request, ctx, blank_form())

    async def save(form: Mapping[str, str], stored: dict[str, Any] | None) -> list[str]:
        if stored is None:
            _, warnings = await add_mailbox(ctx, form["name"].strip(), options_from(form, None))
        else:
            _, warnings = await set_mailbox(ctx, stored["name"], options_from(form, stored))
        return warnings

    pages = (mailbox_page, missing)

    @routes.post("/mailboxes", include_in_schema=False)
    async def new_mailbox(request: Request) -> Response:
        return await added_page(
            request, ctx, new_page, save, example="support", href=mailbox_href, what="Mailbox"
        )

    @routes.get("/mailboxes/{name}", include_in_schema=False)
    async def show_mailbox(request: Request, name: str) -> Response:
        return await mailbox_page(request, ctx, name)

    @routes.post("/mailboxes/{name}", include_in_schema=False)
    async def change_mailbox(request: Request, name: str) -> Response:
        return await changed_page(
            request,
            ctx,
            name,
            pages,
            lambda: _stored(ctx, name),
            save,
            href=mailbox_href(name),
            kept=("name", "protocol"),
        )

    @routes.post("/mailboxes/{name}/test", include_in_schema=False)
    async def test_mailbox(request: Request, name: str) -> Response:
        return await tested_page(
            request, ctx, name, pages, lambda on_step: probe(ctx, name, on_step=on_step)
        )

    @routes.post("/mailboxes/{name}/count", include_in_schema=False)
    async def count_backlog(request: Request, name: str) -> Response:
        async def count() -> dict[str, Any]:
            return {"count": (await poll_mailbox(ctx, name, dry_run=True)).would_take}

        return await action_page(request, ctx, name, pages, count)

    @routes.get("/mailboxes/{name}/delete", include_in_schema=False)
    async def delete_page(request: Request, name: str) -> Response:
        try:
            view = await _stored(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        values = {"title": f"Delete mailbox {name}", "view": view, "href": mailbox_href(name)}
        return await render(request, ctx, "mailbox_delete.html", values)

    @routes.post("/mailboxes/{name}/delete", include_in_schema=False)
    async def delete(request: Request, name: str) -> Response:
        try:
            await delete_mailbox(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        return await done(request, ctx, "/mailboxes", f"Mailbox {name} deleted.")

    return routes
