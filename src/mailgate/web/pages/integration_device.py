"""Device code sign-in from an integration's page (RFC 8628; the flow is `oauth/device.py`, the
one `mailgate integration authorize --device` runs).

"Device code" asks the provider for a code and sends the admin to a page with the verification
URL and the user code. The waiting runs as a background task of the web process
(`DeviceSignins`): `poll_for_approval` sleeps the provider's interval between polls, so no request
waits and the server is never blocked, and it goes on if the admin closes the page — the
credential is stored when the account owner approves, whoever watches. The page shows the
outcome so far; static/integrations.js asks for it as JSON every few seconds and reloads the page
when it changes, and without JavaScript the admin reloads it.

The device code stays in this process's memory, never in a page. A sign-in is forgotten an hour
after it ended; a restart forgets the ones still waiting (the admin asks for a new code).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, NotFound
from mailgate.oauth.device import DeviceCode, poll_for_approval, request_device_code
from mailgate.store.models import Credential
from mailgate.web.pages.integration_actions import action_failed
from mailgate.web.pages.integrations import integration_href, missing
from mailgate.web.shell import render

log = structlog.get_logger(__name__)

KEEP_ENDED = timedelta(hours=1)
MAX_WAITING = 20  # a bound on the tasks one admin's clicks can leave polling a provider


@dataclass
class DeviceSignin:
    """One device sign-in: what the page shows, and how it ended (while `account` and `error`
    are both None, it waits)."""

    id: str
    integration: str
    code: DeviceCode
    started_at: datetime
    account: str | None = None
    credential_id: int | None = None
    error: str | None = None
    ended_at: datetime | None = None
    task: asyncio.Task[Credential] | None = field(default=None, repr=False)

    @property
    def state(self) -> str:
        if self.account is not None:
            return "connected"
        return "failed" if self.error is not None else "waiting"

    @property
    def expires_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.code.expires_in)


def web_link(url: str | None) -> str | None:
    """`url` if a page may link to it (http or https): it comes from the provider."""
    return url if url and urlsplit(url).scheme in ("https", "http") else None


class DeviceSignins:
    """The device sign-ins of this web process, each polled by its own task."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.signins: dict[str, DeviceSignin] = {}

    def _forget_ended(self) -> None:
        cutoff = self.ctx.clock() - KEEP_ENDED
        for sid, signin in list(self.signins.items()):
            if signin.ended_at is not None and signin.ended_at < cutoff:
                del self.signins[sid]

    async def start(self, name: str) -> DeviceSignin:
        """Ask the provider for a code and start waiting for its approval."""
        self.ctx.settings.require_https_base_url()
        self._forget_ended()
        if sum(s.state == "waiting" for s in self.signins.values()) >= MAX_WAITING:
            raise BadInput(
                f"{MAX_WAITING} device sign-ins are waiting already: finish one, or wait until "
                "their codes expire."
            )
        integration, code = await request_device_code(self.ctx, name)
        signin = DeviceSignin(secrets.token_urlsafe(16), name, code, self.ctx.clock())
        # Ends within the code's life, whatever the provider answers meanwhile.
        waiting = poll_for_approval(self.ctx, integration, code)
        signin.task = asyncio.create_task(asyncio.wait_for(waiting, code.expires_in + 60))
        signin.task.add_done_callback(lambda task: self._ended(signin, task))
        self.signins[signin.id] = signin
        return signin

    def _ended(self, signin: DeviceSignin, task: asyncio.Task[Credential]) -> None:
        signin.ended_at = self.ctx.clock()
        if task.cancelled():
            signin.error = "mailgate stopped before the sign-in was approved: ask for a new code."
            return
        problem = task.exception()
        if isinstance(problem, TimeoutError):
            signin.error = "The code expired before the sign-in was approved: ask for a new code."
        elif isinstance(problem, MailgateError):
            signin.error = str(problem)
        elif problem is not None:
            log.error("device sign-in failed", integration=signin.integration, exc_info=problem)
            signin.error = (
                "mailgate failed while waiting for the approval; its log has the details."
            )
        else:
            credential = task.result()
            signin.account, signin.credential_id = credential.account, credential.id

    def find(self, name: str, sid: str) -> DeviceSignin:
        signin = self.signins.get(sid)
        if signin is None or signin.integration != name:
            raise NotFound(
                "This device sign-in is not known here: it ended more than an hour ago, or "
                "mailgate restarted. Ask for a new code on the integration's page."
            )
        return signin


def router(ctx: Context) -> APIRouter:
    routes = APIRouter()
    device_signins = DeviceSignins(ctx)

    @routes.post("/integrations/{name}/device", include_in_schema=False)
    async def start(request: Request, name: str) -> Response:
        try:
            signin = await device_signins.start(name)
        except MailgateError as problem:
            return await action_failed(request, ctx, name, problem)
        return RedirectResponse(f"{integration_href(name)}/device/{signin.id}", status_code=303)

    @routes.get("/integrations/{name}/device/{sid}", include_in_schema=False)
    async def waiting(request: Request, name: str, sid: str) -> Response:
        try:
            signin = device_signins.find(name, sid)
        except NotFound as problem:
            if "application/json" in request.headers.get("accept", ""):
                return JSONResponse({"state": "unknown"}, status_code=404)
            return await missing(request, ctx, problem)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"state": signin.state})
        values = {
            "title": f"Device code for {name}",
            "signin": signin,
            "name": name,
            "verification_uri": web_link(signin.code.verification_uri),
            "verification_uri_complete": web_link(signin.code.verification_uri_complete),
        }
        return await render(request, ctx, "integration_device.html", values)

    return routes
