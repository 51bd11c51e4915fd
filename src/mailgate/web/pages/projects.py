"""`/projects`: the projects of the built-in tracker — add one, change one, and see which
mailboxes feed each and which SMTP server answers for it (`mailgate project add|set|list`)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.mail.smtp_servers import list_smtp
from mailgate.tracker.project_overview import project_overview, project_overviews
from mailgate.tracker.service import add_project, set_project
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, form_values, render


def project_href(key: str) -> str:
    return f"/projects/{quote(key, safe='')}"


async def _form_page(
    request: Request,
    ctx: Context,
    values: Mapping[str, object],
    *,
    error: str | None = None,
) -> Response:
    """The add or edit form, filled with `values` (what was typed, after an error)."""
    servers = [server.name for server in await list_smtp(ctx)]
    return await render(
        request,
        ctx,
        "project_form.html",
        {**values, "servers": servers, "error": error},
        status_code=400 if error else 200,
    )


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/projects", include_in_schema=False)
    async def projects_page(request: Request) -> Response:
        values = {"title": "Projects", "projects": await project_overviews(ctx)}
        return await render(request, ctx, "projects.html", values)

    @routes.get("/projects/new", include_in_schema=False)
    async def new_project_page(request: Request) -> Response:
        form = {"key": "", "name": "", "smtp": "", "notify": True, "default_reporter": ""}
        return await _form_page(request, ctx, {"title": "Add a project", "form": form})

    @routes.post("/projects", include_in_schema=False)
    async def new_project(request: Request) -> Response:
        form = await form_values(request)
        key = form.get("key", "").strip().upper()
        try:
            await add_project(
                ctx,
                key,
                form.get("name", ""),
                smtp=form.get("smtp") or None,
                notify="notify" in form,
                default_reporter=form.get("default_reporter") or None,
            )
        except BadInput as problem:
            typed = {**form, "key": key, "notify": "notify" in form}
            values = {"title": "Add a project", "form": typed}
            return await _form_page(request, ctx, values, error=str(problem))
        return await done(request, ctx, "/projects", f"Project {key} added.")

    @routes.get("/projects/{key}", include_in_schema=False)
    async def project_page(request: Request, key: str) -> Response:
        try:
            project = await project_overview(ctx, key)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/projects", "All projects")
        form = {**project.as_json(), "smtp": project.smtp or ""}
        values = {"title": f"Project {project.key}", "project": project, "form": form}
        return await _form_page(request, ctx, values)

    @routes.post("/projects/{key}", include_in_schema=False)
    async def change_project(request: Request, key: str) -> Response:
        try:
            project = await project_overview(ctx, key)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/projects", "All projects")
        form = await form_values(request)
        try:
            await set_project(
                ctx,
                project.key,
                name=form.get("name", ""),
                smtp=form.get("smtp", ""),
                notify="notify" in form,
                default_reporter=form.get("default_reporter", ""),
            )
        except BadInput as problem:
            typed = {**form, "key": project.key, "notify": "notify" in form}
            values = {"title": f"Project {project.key}", "project": project, "form": typed}
            return await _form_page(request, ctx, values, error=str(problem))
        return await done(request, ctx, project_href(project.key), "Project saved.")

    return routes
