"""`/api/v1/projects`: the projects of the built-in tracker, as `mailgate project` lists, adds
and changes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import User
from mailgate.tracker.service import (
    KEY_RE,
    add_project,
    get_project,
    list_projects,
    project_view,
    set_project,
)
from mailgate.web.api.common import PROBLEMS, Cursor, Limit, Page, admin_only, page_of
from mailgate.web.api.idempotency import IdempotencyKeyHeader, once_async
from mailgate.web.api.shared import Body

Key = Annotated[
    str,
    Path(
        pattern=f"^{KEY_RE.pattern}$",
        description="The project's key (HELP in HELP-12).",
        examples=["HELP"],
    ),
]


class Project(BaseModel):
    """A project as `project list --json` shows it."""

    key: str
    name: str
    smtp: str | None = Field(description="The SMTP server its notifications go out through.")
    notify: bool = Field(description="Whether reporters and watchers are notified by mail.")
    default_reporter: str | None = Field(
        description="The reporter of mail from unknown senders when a mailbox creates no customers."
    )


class NewProject(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"key": "SALES", "name": "Sales", "notify": True}]}
    )

    key: str = Field(
        max_length=50,
        description="2 to 50 capital letters, digits and _, starting with a letter: issues "
        "are KEY-1, KEY-2, …",
    )
    name: str = Field(max_length=200)
    smtp: str | None = Field(
        default=None, max_length=100, description="Default: the only SMTP server there is."
    )
    notify: bool = True
    default_reporter: str | None = Field(default=None, max_length=320)


class ProjectChange(Body):
    """Only the fields given change; `smtp` or `default_reporter` null takes it away."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Help desk", "notify": False}]}
    )

    name: str | None = Field(default=None, max_length=200)
    smtp: str | None = Field(default=None, max_length=100)
    notify: bool | None = None
    default_reporter: str | None = Field(default=None, max_length=320)


def router(ctx: Context) -> APIRouter:
    routes = APIRouter(
        prefix="/projects",
        tags=["projects"],
        responses=PROBLEMS,
        dependencies=[Depends(admin_only)],
    )

    def view(session: Session, key: str) -> Project:
        return Project(**project_view(get_project(session, key)))

    @routes.get("")
    async def projects(cursor: Cursor = None, limit: Limit = 50) -> Page[Project]:
        """Every project, by key."""
        rows = [Project(**project_view(p)) for p in await list_projects(ctx)]
        return page_of(rows, cursor, limit, key=lambda project: project.key)

    @routes.get("/{key}")
    async def project(key: Key) -> Project:
        """One project."""
        return await ctx.db.read(view, key)

    @routes.post("", status_code=201, response_model=Project)
    async def new_project(
        request: Request,
        given: NewProject,
        user: Annotated[User, Depends(admin_only)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Add a project (`mailgate project add`)."""

        async def create() -> tuple[int, Project]:
            await add_project(
                ctx,
                given.key,
                given.name,
                smtp=given.smtp,
                notify=given.notify,
                default_reporter=given.default_reporter,
            )
            return 201, await ctx.db.read(view, given.key)

        return await once_async(request, ctx, user, idempotency_key, create)

    @routes.patch("/{key}")
    async def change_project(key: Key, change: ProjectChange) -> Project:
        """Change a project (`mailgate project set`): only what the body gives."""
        given = change.given()
        for clearable in ("smtp", "default_reporter"):
            if clearable in given and given[clearable] is None:
                given[clearable] = ""
        await set_project(
            ctx,
            key,
            name=given.get("name"),
            smtp=given.get("smtp"),
            notify=given.get("notify"),
            default_reporter=given.get("default_reporter"),
        )
        return await ctx.db.read(view, key)

    return routes
