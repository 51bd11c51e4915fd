"""The page shell every admin and agent page is rendered in: the templates, who is signed in,
the CSRF token for forms, the navigation in the admin's order, a message left by the last action,
and the warnings that belong at the top of every page (an http:// base URL, the demo).

A page handler renders with `await render(request, ctx, "template.html", {...})` and, after a
change, answers `await done(request, ctx, "/where", "What happened.")`: a 303 to a page that
shows the message once (the POST/redirect/GET pattern, so a reload never repeats a change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store.models import User, WebSession
from mailgate.store.vocabulary import Role
from mailgate.tracker.sessions import leave_flash, take_flash

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str


# In the order the admin lives the journey (the screens they know from Jira).
ADMIN_NAV = (
    NavItem("/", "Dashboard"),
    NavItem("/integrations", "OAuth 2.0 integrations"),
    NavItem("/credentials", "Credentials"),
    NavItem("/mailboxes", "Incoming mail"),
    NavItem("/smtp", "Outgoing mail"),
    NavItem("/projects", "Projects"),
    NavItem("/issues", "Issues"),
    NavItem("/quarantine", "Quarantine"),
    NavItem("/outbox", "Outbox"),
    NavItem("/webhooks", "Webhooks"),
    NavItem("/users", "Users"),
    NavItem("/audit", "Audit log"),
)
AGENT_NAV = (NavItem("/issues", "Issues"), NavItem("/quarantine", "Quarantine"))


def signed_in(request: Request) -> tuple[User, WebSession]:
    """The user and session the guard found (every page but the open ones has them)."""
    return request.state.user, request.state.web_session


def csrf_field(request: Request) -> Markup:
    """The hidden field every form that changes something carries."""
    _, web_session = signed_in(request)
    return Markup('<input type="hidden" name="csrf" value="{}">').format(web_session.csrf_token)


def when(value: datetime | None) -> Markup:
    """A time as the reader's eyes want it, with the UTC value on hover (and for scripts that
    turn it into the viewer's time zone)."""
    if value is None:
        return Markup("—")
    utc = value.isoformat(timespec="seconds")
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        utc, value.strftime("%Y-%m-%d %H:%M:%S"), value.strftime("%Y-%m-%d %H:%M")
    )


TEMPLATES.env.globals["when"] = when


def whole_number(text: str | None, digits: int = 9) -> int | None:
    """`text` as a whole number if it is one of at most `digits` ASCII digits, else None
    (`"²".isdigit()` is true, and a page number must fit any database's integer)."""
    if text and text.isascii() and text.isdigit() and len(text) <= digits:
        return int(text)
    return None


def base_url_warning(ctx: Context) -> str | None:
    try:
        ctx.settings.require_https_base_url()
    except BadInput as problem:
        return str(problem)
    return None


def _navigation(request: Request) -> bool:
    """A page the browser shows (not one a script fetches for a part of it, such as the
    integration form's preset values): only such a page takes the message left for the next
    page, or a fetch made as the admin saves would take the "added" that follows."""
    return request.headers.get("sec-fetch-mode", "navigate") == "navigate"


async def render(
    request: Request,
    ctx: Context,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    user, web_session = signed_in(request)
    nav = ADMIN_NAV if user.role == Role.ADMIN else AGENT_NAV
    path = request.url.path
    current = max(
        (i.href for i in nav if path == i.href or path.startswith(i.href.rstrip("/") + "/")),
        key=len,
        default="",
    )
    values = {
        "user": user,
        "nav": nav,
        "current": current,
        "csrf": csrf_field(request),
        "csrf_token": web_session.csrf_token,
        "flash": await take_flash(ctx, web_session.id) if _navigation(request) else None,
        "base_url_warning": base_url_warning(ctx),
        "demo": bool(getattr(request.app.state, "demo", False)),
        **(context or {}),
    }
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)


async def done(request: Request, ctx: Context, location: str, message: str) -> RedirectResponse:
    """After a change: leave `message` for the next page and send the browser there (303)."""
    _, web_session = signed_in(request)
    await leave_flash(ctx, web_session.id, message)
    return RedirectResponse(location, status_code=303)


async def form_values(request: Request) -> dict[str, str]:
    """A submitted form's fields (the last value of each; lists via `form_list`)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str) and key != "csrf"}


async def form_list(request: Request, name: str) -> list[str]:
    form = await request.form()
    return [value for value in form.getlist(name) if isinstance(value, str)]
