"""What the configuration routes of the API share: path parameters that name an object, the
report of a connection test, the problems of a route that reaches another server, and the
fields a PATCH body gave."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from mailgate.errors import BadInput
from mailgate.names import NAME_RE
from mailgate.web.api.common import PROBLEM_JSON, PROBLEMS, Problem, decode_cursor

# Ids are 32-bit integers in every database mailgate runs on.
MAX_ID = 2**31 - 1
# What a stored text column holds at most, for the fields that have no tighter rule.
LONG_TEXT = 2000

NAME_PATTERN = f"^{NAME_RE.pattern}$"
NAMED = "The name it was added with: letters, digits, '.', '_' and '-'."
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="The number `list` shows.", examples=[1])]
ObjectName = Annotated[str, Path(pattern=NAME_PATTERN, description=NAMED)]

# A route that talks to a provider or a mail server may also answer that it could not (502)
# or that something it needs is busy or down for now (503, with Retry-After).
REACHING_OUT: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    **{status: {"model": Problem, "content": {PROBLEM_JSON: {}}} for status in (502, 503)},
}


def id_cursor(cursor: str | None) -> int | None:
    """The id a cursor of a list paged in its query names (the last item of the page before)."""
    if cursor is None:
        return None
    after = decode_cursor(cursor)
    if isinstance(after, str) or not 0 < after <= MAX_ID:
        raise BadInput("The cursor is not one this list gave: start again without it.")
    return after


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid")

    def given(self) -> dict[str, Any]:
        """The fields the client sent (a PATCH changes those and nothing else)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class Step(BaseModel):
    step: str
    ok: bool
    detail: str


class ConnectionCheck(BaseModel):
    """A connection test as the CLI's `test --json` prints it: the steps in order (those after
    a failed one are not run) and, when one failed, what to do."""

    ok: bool
    steps: list[Step]
    diagnosis: str | None


class EndpointFields(Body):
    """Where a mail server is and how mailgate signs in: what mailboxes and SMTP servers share
    (the long options of `mailbox add` and `smtp add`)."""

    host: str | None = Field(default=None, max_length=255, description="The server's host name.")
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] | None = Field(
        default=None, description="none only for a loopback address."
    )
    username: str | None = Field(
        default=None, max_length=320, description="The server's login, usually the address."
    )
    credential: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="An OAuth 2.0 credential's id."
    )
    password: str | None = Field(
        default=None,
        max_length=LONG_TEXT,
        description="Write-only, instead of a credential (deprecated for Microsoft and Google): "
        "stored encrypted, never returned.",
    )
    ca_file: str | None = Field(
        default=None, max_length=LONG_TEXT, description="A PEM file of a private CA, on the server."
    )
    sasl: Literal["auto", "OAUTHBEARER", "XOAUTH2"] | None = Field(
        default=None, description="The SASL mechanism for OAuth 2.0 (auto: what the server offers)."
    )
