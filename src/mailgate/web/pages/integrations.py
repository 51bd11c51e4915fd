"""`/integrations`: the OAuth 2.0 integrations (`mailgate integration list|add|show|set|delete`).

Adding one starts with the provider (a GET form, `?provider=microsoft`), then its form pre-filled
from the provider's preset beside the steps at the provider's console. An integration's page shows
its settings (the secret only as "set"), its credentials and who uses each, and the actions of
integration_actions.py and integration_device.py.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, NotFound
from mailgate.oauth.accounts import credential_reviews
from mailgate.oauth.integrations import (
    add_integration,
    delete_integration,
    integration_views,
    set_integration,
    show_integration,
)
from mailgate.oauth.presets import Preset, preset
from mailgate.web.pages.integration_form import (
    ENDPOINTS,
    PROVIDERS,
    changed_options,
    new_options,
    preset_form,
    stored_form,
    typed_form,
)
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, form_list, form_values, render

_TIMES = (
    "expires_at",
    "last_refresh_at",
    "next_attempt_at",
    "refresh_token_issued_at",
    "created_at",
    "updated_at",
    "at",
)


def integration_href(name: str) -> str:
    return "/integrations/" + quote(name, safe="")


def dated(view: dict[str, Any]) -> dict[str, Any]:
    """A view with its ISO times as datetimes, for the templates' `when()`."""
    out = dict(view)
    for key in _TIMES:
        if isinstance(out.get(key), str):
            out[key] = datetime.fromisoformat(out[key])
    if "history" in out:
        out["history"] = [dated(event) for event in out["history"]]
    return out


async def missing(request: Request, ctx: Context, problem: NotFound) -> Response:
    return await not_found(request, ctx, problem, "/integrations", "All integrations")


async def integration_page(
    request: Request, ctx: Context, name: str, *, status_code: int = 200, **extra: Any
) -> Response:
    """An integration's page; `extra` adds a test's report, an action's error, a login hint."""
    try:
        view, _ = await show_integration(ctx, name)
    except NotFound as problem:
        return await missing(request, ctx, problem)
    credentials = [dated(cred) for cred in await credential_reviews(ctx, name)]
    values = {"title": f"Integration {name}", "view": view, "credentials": credentials}
    return await render(
        request, ctx, "integration.html", {**values, **extra}, status_code=status_code
    )


def _chosen_preset(provider: str, values: dict[str, Any]) -> tuple[Preset, str | None]:
    """The preset for the form's choices, or the provider's defaults and why not."""
    try:
        return preset(
            provider,
            tenant=values.get("tenant") or None,
            cloud=values.get("cloud") or None,
            account_type=values.get("account_type") or None,
            uses=values.get("uses"),
            authority=values.get("authority") or None,
        ), None
    except BadInput as problem:
        return preset(provider), str(problem)


async def _form_page(
    request: Request,
    ctx: Context,
    provider: str,
    form: dict[str, Any],
    endpoints: dict[str, Any],
    *,
    error: str | None = None,
    editing: bool = False,
) -> Response:
    values = {
        "title": f"Edit integration {form['name']}" if editing else "Add an OAuth 2.0 integration",
        "provider": provider,
        "form": form,
        "endpoints": endpoints,
        "editing": editing,
        "redirect_url": ctx.settings.redirect_url,
        "error": error,
    }
    return await render(
        request, ctx, "integration_new.html", values, status_code=400 if error else 200
    )


def _endpoints_of(source: Preset | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, Preset):
        return {key: getattr(source, key) for key in ENDPOINTS}
    return {key: source[key] for key in ENDPOINTS}


async def _uses(request: Request) -> list[str]:
    # The form always sends one empty `use`, so "none ticked" differs from "not given".
    return [use for use in await form_list(request, "use") if use]


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/integrations", include_in_schema=False)
    async def integrations_page(request: Request) -> Response:
        views, _ = await integration_views(ctx)
        values = {"title": "OAuth 2.0 integrations", "integrations": views}
        return await render(request, ctx, "integrations.html", values)

    @routes.get("/integrations/new", include_in_schema=False)
    async def new_integration_page(request: Request) -> Response:
        """The provider choice; with `?provider=`, its form pre-filled for the choices in the
        query (static/integrations.js asks again as they change)."""
        query = request.query_params
        provider = query.get("provider", "")
        if provider not in PROVIDERS:
            return await render(
                request, ctx, "integration_new.html", {"title": "Add an OAuth 2.0 integration"}
            )
        choices: dict[str, Any] = {key: query.get(key, "") for key in query}
        if "use" in query:
            choices["uses"] = [use for use in query.getlist("use") if use]
        chosen, error = _chosen_preset(provider, choices)
        form = preset_form(query.get("name", ""), chosen)
        if error:  # keep what was typed, say why the preset could not follow it
            form.update({k: v for k, v in choices.items() if k in form and k != "uses"})
        return await _form_page(request, ctx, provider, form, _endpoints_of(chosen), error=error)

    @routes.post("/integrations", include_in_schema=False)
    async def add(request: Request) -> Response:
        form, uses = await form_values(request), await _uses(request)
        provider = form.get("provider", "")
        if provider not in PROVIDERS:
            return await render(
                request,
                ctx,
                "integration_new.html",
                {"title": "Add an OAuth 2.0 integration"},
                status_code=400,
            )
        name = form.get("name", "").strip()
        try:
            await add_integration(ctx, name, new_options(form, uses))
        except MailgateError as problem:
            chosen, _ = _chosen_preset(provider, {**form, "uses": uses})
            typed = typed_form(form, uses, preset_form(name, chosen))
            return await _form_page(
                request,
                ctx,
                provider,
                typed,
                _endpoints_of(chosen),
                error=str(problem),
            )
        return await done(
            request,
            ctx,
            integration_href(name),
            f"Integration {name} added. Register its redirect URL at the provider, then "
            "authorize an account.",
        )

    @routes.get("/integrations/{name}", include_in_schema=False)
    async def integration(request: Request, name: str) -> Response:
        return await integration_page(request, ctx, name)

    @routes.get("/integrations/{name}/edit", include_in_schema=False)
    async def edit_page(request: Request, name: str) -> Response:
        try:
            view, _ = await show_integration(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        return await _form_page(
            request,
            ctx,
            view["provider"],
            stored_form(view),
            _endpoints_of(view),
            editing=True,
        )

    @routes.post("/integrations/{name}", include_in_schema=False)
    async def save(request: Request, name: str) -> Response:
        form, uses = await form_values(request), await _uses(request)
        try:
            view, _ = await show_integration(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        try:
            options = changed_options(form, uses, view)
            if all(value is None for value in dataclasses.astuple(options)):
                return await done(request, ctx, integration_href(name), "Nothing to change.")
            await set_integration(ctx, name, options)
        except MailgateError as problem:
            typed = typed_form(form, uses, stored_form(view))
            return await _form_page(
                request,
                ctx,
                view["provider"],
                typed,
                _endpoints_of(view),
                error=str(problem),
                editing=True,
            )
        return await done(request, ctx, integration_href(name), f"Integration {name} saved.")

    @routes.get("/integrations/{name}/delete", include_in_schema=False)
    async def delete_page(request: Request, name: str) -> Response:
        return await _delete_page(request, name)

    @routes.post("/integrations/{name}/delete", include_in_schema=False)
    async def delete(request: Request, name: str) -> Response:
        form = await form_values(request)
        try:
            await delete_integration(ctx, name, force=form.get("with_credentials") == "yes")
        except NotFound as problem:
            return await missing(request, ctx, problem)
        except MailgateError as problem:
            return await _delete_page(request, name, error=str(problem))
        return await done(request, ctx, "/integrations", f"Integration {name} deleted.")

    async def _delete_page(request: Request, name: str, *, error: str | None = None) -> Response:
        try:
            view, _ = await show_integration(ctx, name)
        except NotFound as problem:
            return await missing(request, ctx, problem)
        values = {"title": f"Delete integration {name}", "view": view, "error": error}
        return await render(
            request, ctx, "integration_delete.html", values, status_code=400 if error else 200
        )

    return routes
