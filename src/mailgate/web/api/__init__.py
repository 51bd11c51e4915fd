"""The REST API under /api/v1: a FastAPI application of its own, mounted by `web.app`, so its
OpenAPI 3.1 description (`/api/v1/openapi.json`) holds the API alone and its errors are
problems (RFC 9457) while the pages keep theirs.

The guard (`web.guard`) has already let the caller in — an API token (`Authorization: Bearer`)
or a signed-in session with its CSRF token — and refused an agent everything but the desk. Each
module here is one object of the CLI, built on the same service functions.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from mailgate import __version__
from mailgate.context import Context
from mailgate.web.api import (
    account,
    audit,
    credentials,
    docs,
    integrations,
    issues,
    mailboxes,
    outbox,
    projects,
    quarantine,
    smtp,
    users,
    webhooks,
)
from mailgate.web.api.common import PROBLEM_JSON, install_problems
from mailgate.web.redirects import redirect_slashes_to_base_url

PREFIX = "/api/v1"

DESCRIPTION = """\
mailgate's desk and configuration, for scripts and other systems.

Authenticate with `Authorization: Bearer TOKEN` (`mailgate token create`, or the Account page);
the token has its user's role: an agent reads and answers issues and the quarantine, an admin
everything. Errors are `application/problem+json` (RFC 9457). Lists return
`{"items": [...], "next": CURSOR-or-null}` and take `?cursor=` and `?limit=` (at most 200).
Every POST that creates something honours `Idempotency-Key`.
"""


def create_api(ctx: Context) -> FastAPI:
    api = FastAPI(
        title="mailgate API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": ctx.settings.base_url.rstrip("/") + PREFIX}],
    )
    # A trailing slash redirects to the base URL, never to the request's Host.
    redirect_slashes_to_base_url(api.router, ctx.settings.base_url)
    install_problems(api)
    for routes in (
        account.router(ctx),
        issues.router(ctx),
        projects.router(ctx),
        integrations.router(ctx),
        credentials.router(ctx),
        mailboxes.router(ctx),
        smtp.router(ctx),
        quarantine.router(ctx),
        outbox.router(ctx),
        users.router(ctx),
        audit.router(ctx),
        webhooks.router(ctx),
        docs.router(ctx),
    ):
        api.include_router(routes)
    describe_problems_as_sent(api)
    return api


def describe_problems_as_sent(api: FastAPI) -> None:
    """Errors go out as `application/problem+json`; FastAPI describes a response model under
    `application/json` only, so the description is moved where the answers are (and a client,
    or schemathesis, checks error bodies against the Problem schema)."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is not None:
            return api.openapi_schema
        description = generate()
        for operation in (op for path in description["paths"].values() for op in path.values()):
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if schema.get("$ref", "").endswith("Problem"):  # Problem, ImportProblem
                    content[PROBLEM_JSON] = content.pop("application/json")
        api.openapi_schema = description
        return description

    api.openapi = openapi  # type: ignore[method-assign]
