"""What every route of the REST API shares: problems (RFC 9457) for every error, the caller,
lists a page at a time with an opaque cursor, and the query parameters that say so.

Lists are `{"items": [...], "next": CURSOR-or-null}`, `?cursor=` and `?limit=`
(at most 200). A list small enough to be read whole (projects, integrations, users …) is cut
into pages here (`page_of`); the long ones (issues, the audit log) page in their query.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from itertools import pairwise
from typing import Annotated, Any, Generic, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from mailgate.errors import (
    BadInput,
    MailgateError,
    NeedsAdmin,
    NotFound,
    OperationFailed,
    Transient,
)
from mailgate.store.models import User
from mailgate.store.vocabulary import Role

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
MAX_LIMIT = 200
DEFAULT_LIMIT = 50

T = TypeVar("T")
K = TypeVar("K", str, int)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page, at most 200.")]
Cursor = Annotated[
    str | None,
    Query(max_length=1000, description="The `next` of the previous page; none for the first."),
]


class Problem(BaseModel):
    """An error, as RFC 9457 describes it: `detail` says what is wrong and what to do."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For a request that is not valid: each field's error."
    )


class Page(BaseModel, Generic[T]):
    """One page of a list; `next` is the cursor of the following page, null on the last."""

    items: list[T]
    next: str | None


# The errors every route may answer, for the OpenAPI description.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for status in (400, 401, 403, 404, 409, 422)
}


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, **extra)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON
    )


def install_problems(app: FastAPI) -> None:
    """Every error of the API as a problem: what the service functions raise, FastAPI's own
    (a request that is not valid), and the unforeseen (500, saying nothing of the cause)."""

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, error: NotFound) -> JSONResponse:
        return problem(404, str(error))

    @app.exception_handler(BadInput)
    async def bad_input(_request: Request, error: BadInput) -> JSONResponse:
        return problem(400, str(error))

    @app.exception_handler(NeedsAdmin)
    async def needs_admin(_request: Request, error: NeedsAdmin) -> JSONResponse:
        return problem(409, str(error))

    @app.exception_handler(Transient)
    async def transient(_request: Request, error: Transient) -> JSONResponse:
        answer = problem(503, str(error))
        answer.headers["retry-after"] = "5"
        return answer

    @app.exception_handler(OperationFailed)
    async def failed(_request: Request, error: OperationFailed) -> JSONResponse:
        return problem(502, str(error))

    @app.exception_handler(MailgateError)
    async def other(_request: Request, error: MailgateError) -> JSONResponse:
        return problem(503, str(error))

    @app.exception_handler(RequestValidationError)
    async def not_valid(_request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(part) for part in item.get("loc", ()) if part != "body"),
                "error": str(item.get("msg", "")),
            }
            for item in error.errors()
        ]
        first = errors[0] if errors else {"field": "", "error": "not valid"}
        where = f"{first['field']}: " if first["field"] else ""
        return problem(422, f"The request is not valid: {where}{first['error']}.", errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        detail = (
            error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
        )
        if error.status_code == 404 and detail == "Not Found":
            detail = "No such route: /api/v1/docs lists them."
        elif error.status_code == 405:
            detail = "This route does not take that method: /api/v1/docs lists what it takes."
        return problem(error.status_code, detail)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, error: Exception) -> JSONResponse:
        log.exception("an API request failed", exc_info=error)
        return problem(500, "mailgate failed to answer: the server's log says why.")


def caller(request: Request) -> User:
    """Who is asking: the user of the API token or of the signed-in session (the guard let
    nobody else through)."""
    user: User = request.state.user
    return user


def admin_only(request: Request) -> User:
    """The caller, who must be an admin (the guard refuses agents already; this says so again
    where the route is written)."""
    user = caller(request)
    if user.role != Role.ADMIN:
        raise HTTPException(403, "Only an admin may do this.")
    return user


def page_of(
    rows: Sequence[T], cursor: str | None, limit: int, key: Callable[[T], str | int]
) -> Page[T]:
    """A page of a list read whole, in its order: the rows after the one `cursor` names. When
    that row is gone (deleted meanwhile), the page goes on from where it stood in the order."""
    start = 0
    if cursor is not None:
        start = _start_after(decode_cursor(cursor), [key(row) for row in rows])
    shown = list(rows[start : start + limit])
    following = encode_cursor(key(shown[-1])) if start + limit < len(rows) and shown else None
    return Page[T](items=shown, next=following)


def _start_after(after: str | int, keys: list[str | int]) -> int:
    """Where the page after the key `after` starts in a list with these keys."""
    if after in keys:
        return keys.index(after) + 1
    # The row is gone: in a list in ascending order of its keys the page goes on with the first
    # key greater than the cursor's, in descending order with the first smaller. In no order,
    # nothing says where it stood, and starting over would repeat rows unnoticed: so say so.
    if isinstance(after, int):
        numbers = [k for k in keys if isinstance(k, int)]
        if len(numbers) == len(keys):
            found = _resume(after, numbers)
            if found is not None:
                return found
    else:
        texts = [k for k in keys if isinstance(k, str)]
        if len(texts) == len(keys):
            found = _resume(after, texts)
            if found is not None:
                return found
    raise BadInput("The cursor names an item that is gone: start again without it.")


def _resume(after: K, keys: list[K]) -> int | None:
    """The position of the first key past `after` in a list of keys in order (None when the
    keys are in no order)."""
    if all(a <= b for a, b in pairwise(keys)):
        return next((at for at, k in enumerate(keys) if k > after), len(keys))
    if all(a >= b for a, b in pairwise(keys)):
        return next((at for at, k in enumerate(keys) if k < after), len(keys))
    return None


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps([value]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | int:
    try:
        (value,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(cursor)
        if isinstance(value, int) and not 0 <= value < 2**31:  # ids fit any database's integer
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadInput("The cursor is not one this list gave: start again without it.") from None
    return value
