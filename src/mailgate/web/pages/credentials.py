"""`/credentials`: every authorized account (`mailgate credential list|show|refresh|revoke`), its
status and tokens' ages, who uses it, its history; Re-authorize, Refresh now, Revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailgate.context import Context
from mailgate.errors import MailgateError, NotFound
from mailgate.oauth.accounts import credential_review, credential_reviews
from mailgate.oauth.credentials import refresh_credential, revoke_credential
from mailgate.oauth.flows import authorize_client_credentials
from mailgate.store.vocabulary import GrantType
from mailgate.web.pages.integration_actions import failure_status, sign_in
from mailgate.web.pages.integrations import dated
from mailgate.web.pages.notfound import not_found
from mailgate.web.shell import done, render


def credential_href(credential_id: int) -> str:
    return f"/credentials/{credential_id}"


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()

    async def missing(request: Request, problem: NotFound) -> Response:
        return await not_found(request, ctx, problem, "/credentials", "All credentials")

    async def page(
        request: Request,
        credential_id: int,
        template: str = "credential.html",
        *,
        status_code: int = 200,
        **extra: Any,
    ) -> Response:
        try:
            cred = dated(await credential_review(ctx, credential_id))
        except NotFound as problem:
            return await missing(request, problem)
        values = {"title": f"Credential {credential_id}", "cred": cred, **extra}
        return await render(request, ctx, template, values, status_code=status_code)

    @routes.get("/credentials", include_in_schema=False)
    async def credentials_page(request: Request) -> Response:
        credentials = [dated(cred) for cred in await credential_reviews(ctx)]
        values = {"title": "Credentials", "credentials": credentials}
        return await render(request, ctx, "credentials.html", values)

    @routes.get("/credentials/{credential_id}", include_in_schema=False)
    async def credential_page(request: Request, credential_id: int) -> Response:
        return await page(request, credential_id)

    @routes.post("/credentials/{credential_id}/reauthorize", include_in_schema=False)
    async def reauthorize(request: Request, credential_id: int) -> Response:
        """The same sign-in as the integration's Authorize, for this account; an app-only
        credential gets a new token at once."""
        try:
            cred = await credential_review(ctx, credential_id)
            if cred["grant_type"] == GrantType.CLIENT_CREDENTIALS:
                await authorize_client_credentials(ctx, cred["integration"])
                return await done(
                    request, ctx, credential_href(credential_id), "New app-only token obtained."
                )
            return await sign_in(ctx, cred["integration"], cred["account"])
        except NotFound as problem:
            return await missing(request, problem)
        except MailgateError as problem:
            return await page(
                request, credential_id, error=str(problem), status_code=failure_status(problem)
            )

    @routes.post("/credentials/{credential_id}/refresh", include_in_schema=False)
    async def refresh(request: Request, credential_id: int) -> Response:
        try:
            outcome = await refresh_credential(ctx, credential_id)
        except NotFound as problem:
            return await missing(request, problem)
        except MailgateError as problem:
            return await page(request, credential_id, error=str(problem), status_code=400)
        if not outcome["ok"]:
            error = f"The refresh failed: {outcome['error']}"
            return await page(request, credential_id, error=error, status_code=502)
        expires = datetime.fromisoformat(outcome["expires_at"])
        return await done(
            request,
            ctx,
            credential_href(credential_id),
            f"Refreshed: the access token is valid until {expires:%Y-%m-%d %H:%M} UTC.",
        )

    @routes.get("/credentials/{credential_id}/revoke", include_in_schema=False)
    async def revoke_page(request: Request, credential_id: int) -> Response:
        return await page(request, credential_id, "credential_revoke.html")

    @routes.post("/credentials/{credential_id}/revoke", include_in_schema=False)
    async def revoke(request: Request, credential_id: int) -> Response:
        try:
            at_provider = await revoke_credential(ctx, credential_id)
        except NotFound as problem:
            return await missing(request, problem)
        except MailgateError as problem:
            return await page(
                request,
                credential_id,
                "credential_revoke.html",
                error=str(problem),
                status_code=400,
            )
        where = "at the provider, and its tokens forgotten" if at_provider else "(tokens forgotten)"
        return await done(request, ctx, credential_href(credential_id), f"Revoked {where}.")

    return routes
