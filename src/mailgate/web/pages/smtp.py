"""`/smtp` ("Outgoing mail"): the SMTP servers notifications go out through; add one (a provider
pre-fills host, port and security), see and change one, test its connection, send a test email,
delete it — `mailgate smtp add|set|list|show|test`, through the same service functions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.mail.smtp_servers import (
    DEFAULT_PORTS,
    GOOGLE_HOST,
    MICROSOFT_HOSTS,
    SmtpOptions,
    add_smtp,
    credential_choices,
    delete_smtp,
    get_smtp,
    list_smtp,
    set_smtp,
    smtp_view,
)
from mailgate.outbound.smtp_test import probe_smtp
from mailgate.steps import StepReport
from mailgate.store.vocabulary import Security, SmtpStatus
from mailgate.web.pages.mail_form import (
    endpoint_form,
    endpoint_from,
    form_choices,
    given,
    password_warning,
)
from mailgate.web.pages.notfound import not_found
from mailgate.web.pages.server_page import added_page, changed_page, tested_page
from mailgate.web.shell import done, form_values, render


class Provider:
    """A provider's submission server, which the form's provider choice fills in."""

    def __init__(self, label: str, host: str, port: int, security: str) -> None:
        self.label, self.host, self.port, self.security = label, host, port, security


PROVIDERS = {
    "microsoft": Provider(
        "Microsoft Exchange Online",
        MICROSOFT_HOSTS["global"],
        DEFAULT_PORTS[Security.STARTTLS],
        Security.STARTTLS,
    ),
    "google": Provider("Gmail", GOOGLE_HOST, DEFAULT_PORTS[Security.STARTTLS], Security.STARTTLS),
}
# Status as words and a colour (never the colour alone).
STATUS = {
    SmtpStatus.NEW: ("idle", "not used yet"),
    SmtpStatus.OK: ("ok", "OK"),
    SmtpStatus.FAILING: ("bad", "failing"),
    SmtpStatus.AUTH_FAILED: ("bad", "sign-in refused"),
    SmtpStatus.NEEDS_REAUTHORIZATION: ("bad", "needs re-authorization"),
}


def smtp_href(name: str) -> str:
    return f"/smtp/{quote(name, safe='')}"


def provider_of(host: str) -> str:
    """The provider whose submission host `host` is ("custom" for any other)."""
    for key, provider in PROVIDERS.items():
        if host.lower() == provider.host or (
            key == "microsoft" and host.lower() in MICROSOFT_HOSTS.values()
        ):
            return key
    return "custom"


def checked_at(view: Mapping[str, Any]) -> datetime | None:
    """When the server was last used or checked, as a time the page shows (`when`)."""
    stamp = view["last_check_at"]
    return datetime.fromisoformat(stamp) if stamp else None


def blank_form(provider: str = "custom") -> dict[str, Any]:
    """A new server's form; a provider's host, port and security filled in when one is named."""
    chosen = PROVIDERS.get(provider)
    return {
        "name": "",
        "provider": provider if chosen else "custom",
        "host": chosen.host if chosen else "",
        "port": str(chosen.port) if chosen else "",
        "security": chosen.security if chosen else Security.STARTTLS,
        "username": "",
        "auth": "oauth2",
        "credential": "",
        "ca_file": "",
        "sasl": "auto",
        "from_address": "",
        "from_name": "",
    }


def stored_form(view: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": view["name"],
        "provider": provider_of(view["host"]),
        **endpoint_form(view),
        "from_address": view["from"],
        "from_name": view["from_name"] or "",
    }


def options_from(form: Mapping[str, str], stored: Mapping[str, Any] | None) -> SmtpOptions:
    """The options of a submitted form (`stored`: the server's view when it is edited). A
    provider chosen with the host left empty gives its host, port and security."""
    endpoint = endpoint_from(form, stored["auth"] if stored else None)
    chosen = PROVIDERS.get(form.get("provider", ""))
    if chosen is not None and endpoint["host"] is None:
        endpoint["host"] = chosen.host
        endpoint["port"] = endpoint["port"] or chosen.port
        endpoint["security"] = endpoint["security"] or chosen.security
    return SmtpOptions(
        **endpoint,
        from_address=given(form, "from_address"),
        from_name=form.get("from_name", "") if stored else given(form, "from_name"),
    )


async def _choices(ctx: Context) -> dict[str, Any]:
    return {**form_choices(await credential_choices(ctx)), "providers": PROVIDERS}


async def _stored(ctx: Context, name: str) -> dict[str, Any]:
    async with ctx.db.session() as session:
        return smtp_view(await get_smtp(session, name))


async def new_page(
    request: Request, ctx: Context, form: Mapping[str, Any], *, error: str | None = None
) -> Response:
    values = {
        "title": "Add an outgoing mail server",
        "form": form,
        "error": error,
        "warn_password": password_warning(form),
        **await _choices(ctx),
    }
    return await render(request, ctx, "smtp_new.html", values, status_code=400 if error else 200)


async def smtp_page(
    request: Request,
    ctx: Context,
    name: str,
    *,
    form: Mapping[str, Any] | None = None,
    error: str | None = None,
    report: StepReport | None = None,
    sent: StepReport | None = None,
    to: str = "",
    action_error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The server's page: its status, its tests (`report` of Test connection, `sent` of Send a
    test email), and its settings' form (`form`: what was typed, after an error)."""
    try:
        view = await _stored(ctx, name)
    except NotFound as problem:
        return await missing(request, ctx, problem)
    shown = form if form is not None else stored_form(view)
    values = {
        "title": f"SMTP server {name}",
        "view": view,
        "status": STATUS.get(view["status"], ("idle", view["status"])),
        "checked_at": checked_at(view),
        "href": smtp_href(name),
        "form": shown,
        "error": error,
        "warn_password": password_warning(shown),
        "report": report,
        "sent": sent,
        "to": to,
        "action_error": action_error,
        **await _choices(ctx),
    }
    return await render(request, ctx, "smtp.html", values, status_code=status_code)


async def missing(request: Request, ctx: Context, problem: NotFound) -> Response:
    return await not_found(request, ctx, problem, "/smtp", "All outgoing mail servers")


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/smtp", include_in_schema=False)
    async def servers_page(request: Request) -> Response:
        views = [smtp_view(row) for row in await list_smtp(ctx)]
        values = {
            "title": "Outgoing mail",
            "servers": [(view, checked_at(view)) for view in views],
            "statuses": STATUS,
        }
        return await render(request, ctx, "smtp_list.html", values)

    @routes.get("/smtp/new", include_in_schema=False)
    async def new_server_page(request: Request, provider: str = "custom") -> Response:
        return await new_page(request, ctx, blank_form(provider))

    async def save(form: Mapping[str, str], stored: dict[str, Any] | None) -> list[str]:
        if stored is None:
            _, warnings = await add_smtp(ctx, form["name"].strip(), options_from(form, None))
        else:
            _, warnings = await set_smtp(ctx, stored["name"], options_from(form, stored))
        return warnings

    pages = (smtp_page, missing)

    @routes.post("/smtp", include_in_schema=False)
    async def new_server(request: Request) -> Response:
        return await added_page(
            request, ctx, new_page, save, example="outgoing", href=smtp_href, what="SMTP server"
        )

    @routes.get("/smtp/{name}", include_in_schema=False)
    async def show_server(request: Request, name: str) -> Response:
        return await smtp_page(request, ctx, name)

    @routes.post("/smtp/{name}", include_in_schema=False)
    async def change_server(request: Request, name: str) -> Response:
        return await changed_page(
            request, ctx, name, pages, lambda: _stored(ctx, name), save, href=smtp_href(name)
        )

    @routes.post("/smtp/{name}/test", include_in_schema=False)
    async def test_server(request: Request, name: str) -> Response:
        return await tested_page(
            request, ctx, name, pages, lambda on_step: probe_smtp(ctx, name, None, on_step=on_step)
        )

    @routes.post("/smtp/{name}/send", include_in_schema=False)
    async def send_test(request: Request, name: str) -> Response:
        to = (await form_values(request)).get("to", "").strip()
        return await tested_page(
            request,
            ctx,
            name,
            pages,
            lambda on_step: probe_smtp(ctx, name, to, on_step=on_step),
            shown_as="sent",
            to=to,
        )

    @routes.get("/smtp/{name}/delete", include_in_schema=False)
    async def delete_page(request: Request, name: str) -> Response:
        try:
            view = await _stored(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        values = {"title": f"Delete SMTP server {name}", "view": view, "href": smtp_href(name)}
        return await render(request, ctx, "smtp_delete.html", values)

    @routes.post("/smtp/{name}/delete", include_in_schema=False)
    async def delete(request: Request, name: str) -> Response:
        try:
            await delete_smtp(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        except BadInput as problem:
            return await smtp_page(request, ctx, name, action_error=str(problem), status_code=400)
        return await done(request, ctx, "/smtp", f"SMTP server {name} deleted.")

    return routes
