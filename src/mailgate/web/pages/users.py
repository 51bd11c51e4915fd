"""`/users`: who signs in — add a user (their one-time link shown once, to send them yourself),
change a role, disable or enable, and a password reset link (`mailgate user add|set|list`).

A one-time link is shown in the answer to the POST that made it, never stored to show later
(only its SHA-256 is kept): a reload asks the browser to post again, which makes a new link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store.models import User
from mailgate.store.vocabulary import Role
from mailgate.tracker.users import (
    Link,
    add_user,
    get_user,
    list_users,
    password_link,
    pending_links,
    set_user,
    user_view,
)
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, form_values, render, signed_in

ROLES = (
    (Role.ADMIN, "Admin: configures mailgate (every page)"),
    (Role.AGENT, "Agent: works on issues and the quarantine"),
)


def user_href(email: str) -> str:
    return f"/users/{quote(email, safe='@')}"


def _row(user: User, links: dict[str, Any]) -> dict[str, Any]:
    """A user as the pages show them: never the hash, only whether a password is set."""
    return {
        **user_view(user),
        "created_at": user.created_at,
        "last_sign_in_at": user.last_sign_in_at,
        "link_expires": links.get(user.email),
        "href": user_href(user.email),
    }


async def _user_page(
    request: Request, ctx: Context, email: str, *, error: str | None = None
) -> Response:
    try:
        user = await ctx.db.run(get_user, email)
    except NotFound as problem:
        return await not_found(request, ctx, problem, "/users", "All users")
    me, _ = signed_in(request)
    values = {
        "title": f"User {user.email}",
        "person": _row(user, await pending_links(ctx)),
        "roles": ROLES,
        "is_me": me.id == user.id,
        "error": error,
    }
    return await render(request, ctx, "user.html", values, status_code=400 if error else 200)


async def _link_page(
    request: Request, ctx: Context, email: str, link: Link, *, added: bool
) -> Response:
    values = {"title": f"One-time link for {email}", "email": email, "link": link, "added": added}
    return await render(request, ctx, "user_link.html", values)


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    @routes.get("/users", include_in_schema=False)
    async def users_page(request: Request) -> Response:
        links = await pending_links(ctx)
        rows = [_row(user, links) for user in await list_users(ctx)]
        return await render(request, ctx, "users.html", {"title": "Users", "users": rows})

    @routes.get("/users/new", include_in_schema=False)
    async def new_user_page(request: Request) -> Response:
        values = {"title": "Add a user", "roles": ROLES, "form": {"role": Role.AGENT}}
        return await render(request, ctx, "user_new.html", values)

    @routes.post("/users", include_in_schema=False)
    async def new_user(request: Request) -> Response:
        form = await form_values(request)
        try:
            user, link = await add_user(ctx, form.get("email", ""), form.get("role", ""))
        except BadInput as problem:
            values = {"title": "Add a user", "roles": ROLES, "form": form, "error": str(problem)}
            return await render(request, ctx, "user_new.html", values, status_code=400)
        assert link is not None  # added without a password: they choose one at the link
        return await _link_page(request, ctx, user.email, link, added=True)

    @routes.get("/users/{email:path}", include_in_schema=False)
    async def user_page(request: Request, email: str) -> Response:
        return await _user_page(request, ctx, email)

    async def change(request: Request, email: str, **change: Any) -> Response:
        try:
            user = await set_user(ctx, email, **change)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/users", "All users")
        except BadInput as problem:
            return await _user_page(request, ctx, email, error=str(problem))
        if "role" in change:
            message = f"{user.email} is now {user.role}; their sessions were signed out."
        elif user.disabled:
            message = f"{user.email} is disabled and was signed out everywhere."
        else:
            message = f"{user.email} may sign in again."
        return await done(request, ctx, user_href(user.email), message)

    @routes.post("/users/{email:path}/role", include_in_schema=False)
    async def change_role(request: Request, email: str) -> Response:
        form = await form_values(request)
        return await change(request, email, role=form.get("role", ""))

    @routes.post("/users/{email:path}/disable", include_in_schema=False)
    async def disable(request: Request, email: str) -> Response:
        return await change(request, email, disabled=True)

    @routes.post("/users/{email:path}/enable", include_in_schema=False)
    async def enable(request: Request, email: str) -> Response:
        return await change(request, email, disabled=False)

    @routes.post("/users/{email:path}/reset-link", include_in_schema=False)
    async def reset_link(request: Request, email: str) -> Response:
        try:
            link = await password_link(ctx, email)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/users", "All users")
        return await _link_page(request, ctx, email.strip().lower(), link, added=False)

    return routes
