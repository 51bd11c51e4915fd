"""What the incoming and outgoing mail server pages do alike: store a submitted form through the
service function (the form again with its sentence on bad input), and after a button run the
service function, then show the server's page with its outcome (a test's steps, a count) or with
the sentence of what went wrong next to the buttons; a name that matches nothing gets the page
that says so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, NotFound
from mailgate.mail.endpoints import PASSWORD_DEPRECATED
from mailgate.steps import StepListener, StepReport
from mailgate.web.shell import done, form_values
from mailgate.web.steps import step_stream, wants_step_stream

# The server's page: (request, ctx, name, **what it shows) → the page.
ServerPage = Callable[..., Awaitable[Response]]
Missing = Callable[[Request, Context, NotFound], Awaitable[Response]]
Test = Callable[[StepListener | None], Awaitable[StepReport]]
NewPage = Callable[..., Awaitable[Response]]  # (request, ctx, typed form, error=…) → the page
# Store a submitted form through the service function: (form, the stored view or None for a
# new server) → the service's warnings.
Save = Callable[[Mapping[str, str], dict[str, Any] | None], Awaitable[list[str]]]


def failure_status(problem: MailgateError) -> int:
    """400 for what the admin typed or set up wrong; 502 when the server failed or refused."""
    return 400 if isinstance(problem, BadInput) else 502


def saved_message(what: str, warnings: list[str]) -> str:
    """The one-time message after a save: what happened, then the service's warnings (the
    password's deprecation is on the page itself, beside the form)."""
    others = [warning for warning in warnings if PASSWORD_DEPRECATED not in warning]
    return " ".join([what, *(f"Warning: {warning}" for warning in others)])


def name_of(form: Mapping[str, str], example: str) -> str:
    """The name typed for a new server (the service function checks what it may be)."""
    name = form.get("name", "").strip()
    if not name:
        raise BadInput(f"No name given: give the server a short name, e.g. {example}.")
    return name


async def added_page(
    request: Request,
    ctx: Context,
    new_page: NewPage,
    save: Save,
    *,
    example: str,
    href: Callable[[str], str],
    what: str,
) -> Response:
    """A new server's form submitted: stored, then its page with what happened and the
    service's warnings; or the form again with the service's sentence (400, filled with what
    was typed but the password)."""
    form = await form_values(request)
    try:
        name = name_of(form, example)
        warnings = await save(form, None)
    except BadInput as problem:
        return await new_page(request, ctx, form, error=str(problem))
    return await done(request, ctx, href(name), saved_message(f"{what} {name} added.", warnings))


async def changed_page(
    request: Request,
    ctx: Context,
    name: str,
    pages: tuple[ServerPage, Missing],
    stored: Callable[[], Awaitable[dict[str, Any]]],
    save: Save,
    *,
    href: str,
    kept: tuple[str, ...] = ("name",),
) -> Response:
    """A server's settings saved: its page again with "Saved." and the service's warnings; or
    with the form as typed (but the password, and `kept` as stored) and the service's sentence
    beside it (400)."""
    page, missing = pages
    form = await form_values(request)
    try:
        view = await stored()
    except NotFound as problem:
        return await missing(request, ctx, problem)
    try:
        warnings = await save(form, view)
    except BadInput as problem:
        typed = {**form, **{field: view[field] for field in kept}}
        return await page(request, ctx, name, form=typed, error=str(problem), status_code=400)
    return await done(request, ctx, href, saved_message("Saved.", warnings))


async def action_page(
    request: Request,
    ctx: Context,
    name: str,
    pages: tuple[ServerPage, Missing],
    action: Callable[[], Awaitable[dict[str, Any]]],
    **kept: Any,
) -> Response:
    """Run `action` on server `name` and show the server's page with what it returned, or with
    what went wrong (400 or 502), and `kept` either way (what the admin typed for the action);
    a server that does not exist gets the not-found page."""
    page, missing = pages
    try:
        shown = await action()
    except NotFound as problem:
        return await missing(request, ctx, problem)
    except MailgateError as problem:
        status = failure_status(problem)
        return await page(request, ctx, name, action_error=str(problem), status_code=status, **kept)
    return await page(request, ctx, name, **shown, **kept)


async def tested_page(
    request: Request,
    ctx: Context,
    name: str,
    pages: tuple[ServerPage, Missing],
    test: Test,
    shown_as: str = "report",
    **kept: Any,
) -> Response:
    """A test's button: the steps streamed live to the page's script, or, for a plain form
    post, the page with the finished steps as `shown_as` (and `kept` beside them)."""
    if wants_step_stream(request):
        return step_stream(test)

    async def run() -> dict[str, Any]:
        return {shown_as: await test(None)}

    return await action_page(request, ctx, name, pages, run, **kept)
