"""Signing in and out, one-time links (first admin, new users, password resets), and Your
account: a user's own password and API tokens.

Before a session exists there is no session CSRF token, so the sign-in forms carry a random token
that is also set in a cookie (double submit): a form posted from another site can't know it. The
guard refuses cross-site posts too. A successful sign-in always makes a new session (the cookie
a visitor arrived with is never promoted), with `Secure`, `HttpOnly` and `SameSite=Lax` cookies.

A new API token is shown in the answer to the form that made it (201, like every page `no-store`),
never in a message kept for the next page: the database holds only its hash.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.store.vocabulary import LinkPurpose, Role
from mailgate.tracker import sessions, users
from mailgate.tracker.tokens import create_token, list_tokens, revoke_token
from mailgate.web.guard import SESSION_COOKIE, cookie
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import TEMPLATES, done, form_values, render, signed_in, whole_number

FORM_COOKIE = "__Host-mailgate_form"


def safe_next(target: str | None, role: str = Role.ADMIN) -> str:
    """Where to go after signing in: a path on this site only (never `//host` or a URL)."""
    default = "/" if role == Role.ADMIN else "/issues"
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _plain(
    request: Request, template: str, values: dict[str, object], status_code: int = 200
) -> HTMLResponse:
    """A page shown before sign-in, with a fresh double-submit token for its form."""
    token = secrets.token_urlsafe(24)
    response = TEMPLATES.TemplateResponse(
        request, template, {**values, "form_token": token}, status_code=status_code
    )
    response.set_cookie(FORM_COOKIE, token, secure=True, httponly=True, samesite="strict")
    return response


def _form_token_ok(request: Request, form: dict[str, str]) -> bool:
    expected = cookie(request.scope, FORM_COOKIE) or ""
    given = form.get("form_token", "")
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def _signed_in_response(location: str, signed: sessions.SignedIn) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        secure=True,
        httponly=True,
        samesite="lax",
        max_age=int(sessions.ABSOLUTE.total_seconds()),
    )
    response.delete_cookie(FORM_COOKIE, secure=True, httponly=True, samesite="strict")
    return response


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def router(ctx: Context, *, demo: bool = False) -> APIRouter:
    routes = APIRouter()
    expired = "The form had expired: try again."

    @routes.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        target = request.query_params.get("next")
        if demo:  # the visitor is the demo admin, and the banner says so
            admin = await users.ensure_demo_admin(ctx, users.DEMO_ADMIN)
            signed = await sessions.start_session(ctx, admin, _address(request))
            return _signed_in_response(safe_next(target), signed)
        return _plain(
            request, "login.html", {"title": "Sign in", "next": target or "", "email": ""}
        )

    @routes.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        email, target = form.get("email", ""), form.get("next", "")
        values = {"title": "Sign in", "next": target, "email": email}
        if not _form_token_ok(request, form):
            return _plain(request, "login.html", {**values, "error": expired}, 400)
        try:
            signed = await sessions.sign_in(ctx, email, form.get("password", ""), _address(request))
        except BadInput as refused:  # a wrong password, a block, too many checks at once
            return _plain(request, "login.html", {**values, "error": str(refused)}, 400)
        return _signed_in_response(safe_next(target, signed.user.role), signed)

    @routes.get("/logout", include_in_schema=False)
    async def logout_page(request: Request) -> Response:
        """A bookmarked /logout: one button (a GET never changes anything)."""
        return await render(request, ctx, "logout.html", {"title": "Sign out"})

    @routes.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        token = cookie(request.scope, SESSION_COOKIE)
        if token:
            await sessions.end_session(ctx, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, secure=True, httponly=True, samesite="lax")
        return response

    @routes.get("/welcome/{token}", include_in_schema=False)
    async def welcome_page(request: Request, token: str) -> Response:
        """Opening the link changes nothing (a mail scanner may open it first)."""
        try:
            view = await users.look_at_link(ctx, token)
        except BadInput as problem:
            return _plain(
                request, "welcome.html", {"title": "Link not valid", "error": str(problem)}, 400
            )
        return _plain(request, "welcome.html", _welcome_values(view))

    @routes.post("/welcome/{token}", include_in_schema=False)
    async def welcome(request: Request, token: str) -> Response:
        form = await _form(request)
        try:
            view = await users.look_at_link(ctx, token)
        except BadInput as problem:
            return _plain(
                request, "welcome.html", {"title": "Link not valid", "error": str(problem)}, 400
            )
        values = {**_welcome_values(view), "email": form.get("email", "")}
        if not _form_token_ok(request, form):
            return _plain(request, "welcome.html", {**values, "error": expired}, 400)
        try:
            if form.get("password", "") != form.get("confirm", ""):
                raise BadInput("The two passwords differ: type the same password twice.")
            user = await users.use_link(ctx, token, form.get("password", ""), form.get("email"))
        except BadInput as problem:
            return _plain(request, "welcome.html", {**values, "error": str(problem)}, 400)
        signed = await sessions.start_session(ctx, user, _address(request))
        return _signed_in_response(safe_next(None, user.role), signed)

    async def account_page_with(
        request: Request, status_code: int = 200, **extra: object
    ) -> HTMLResponse:
        user, _ = signed_in(request)
        tokens = [_dated(view) for view in await list_tokens(ctx, user.email)]
        values = {"title": "Your account", "tokens": tokens, "token_name": "", **extra}
        return await render(request, ctx, "account.html", values, status_code=status_code)

    @routes.get("/account", include_in_schema=False)
    async def account_page(request: Request) -> Response:
        return await account_page_with(request)

    @routes.post("/account/tokens", include_in_schema=False)
    async def new_token(request: Request) -> Response:
        user, _ = signed_in(request)
        name = (await form_values(request)).get("name", "")
        try:
            view, token = await create_token(ctx, user.email, name)
        except BadInput as problem:
            return await account_page_with(request, 400, token_error=str(problem), token_name=name)
        return await account_page_with(request, 201, new_token={**view, "token": token})

    @routes.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
    async def revoke(request: Request, token_id: str) -> Response:
        user, _ = signed_in(request)
        try:
            number = whole_number(token_id)
            if number is None:
                raise NotFound(f"No token {token_id}: your tokens are listed on Your account.")
            view = await revoke_token(ctx, number, owner=user.email)
        except NotFound as problem:
            return await not_found(request, ctx, problem, "/account", "Your account")
        return await done(request, ctx, "/account", f"Token {view['name']} revoked.")

    @routes.post("/account", include_in_schema=False)
    async def account(request: Request) -> Response:
        user, _ = signed_in(request)
        form = await form_values(request)
        try:
            current = form.get("current", "")
            if not await sessions.confirm_password(ctx, user, current, _address(request)):
                raise BadInput("The current password is not right.")
            if form.get("password", "") != form.get("confirm", ""):
                raise BadInput("The two new passwords differ: type the same password twice.")
            await users.set_user(ctx, user.email, password=form.get("password", ""))
        except BadInput as problem:
            return await account_page_with(request, 400, error=str(problem))
        # Every session of this user ended with the change; this browser signs in anew.
        signed = await sessions.start_session(ctx, user, _address(request))
        response = _signed_in_response("/account", signed)
        await sessions.leave_flash(
            ctx, signed.session.id, "Password changed; other sessions were signed out."
        )
        return response

    return routes


def _dated(view: dict[str, Any]) -> dict[str, Any]:
    """A token's view with its times as datetimes, for `when` to show."""
    times = ("created_at", "last_used_at", "revoked_at")
    return {
        **view,
        **{key: datetime.fromisoformat(view[key]) for key in times if view[key] is not None},
    }


def _welcome_values(view: users.LinkView) -> dict[str, object]:
    if view.purpose == LinkPurpose.FIRST_ADMIN:
        return {"title": "Create the first admin", "first_admin": True, "email": ""}
    return {"title": "Choose your password", "first_admin": False, "email": view.email or ""}
