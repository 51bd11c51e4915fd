"""The web app in-process (httpx over ASGI, no network) with a signed-in user, for page tests.

`WebClient.sign_in` goes through the real sign-in form (its double-submit token included);
`post` sends a form with the session's CSRF token, as the pages' forms do.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape

import httpx2
import pytest

from mailgate.context import Context
from mailgate.tracker.tokens import create_token
from mailgate.tracker.users import add_user
from mailgate.web.app import create_app

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def field(page: str, pattern: re.Pattern[str]) -> str:
    found = pattern.search(page)
    assert found is not None, f"no {pattern.pattern} in the page"
    return unescape(found.group(1))


class WebClient:
    def __init__(self, ctx: Context, client: httpx2.AsyncClient) -> None:
        self.ctx = ctx
        self.http = client
        self.csrf: str | None = None

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx2.Response:
        page = await self.http.get("/login")
        answer = await self.http.post(
            "/login",
            data={
                "email": email,
                "password": password,
                "form_token": field(page.text, _FORM_TOKEN),
            },
        )
        if answer.status_code == 303:
            landing = await self.http.get(answer.headers["location"])
            found = _CSRF.search(landing.text)
            self.csrf = unescape(found.group(1)) if found else None
        return answer

    async def get(self, path: str, **options: object) -> httpx2.Response:
        return await self.http.get(path, **options)  # type: ignore[arg-type]

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx2.Response:
        """A form post as the pages send it: with the session's CSRF token."""
        return await self.http.post(path, data={**(data or {}), "csrf": self.csrf or ""})


async def web_client(ctx: Context, *, demo: bool = False) -> AsyncIterator[WebClient]:
    app = create_app(ctx, run_workers=False, demo=demo)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url=ctx.settings.base_url) as client:
        yield WebClient(ctx, client)


@pytest.fixture
async def anonymous(ctx: Context) -> AsyncIterator[WebClient]:
    async for client in web_client(ctx):
        yield client


@pytest.fixture
async def admin(ctx: Context) -> AsyncIterator[WebClient]:
    """A client signed in as admin@example.com."""
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    async for client in web_client(ctx):
        answer = await client.sign_in("admin@example.com")
        assert answer.status_code == 303, answer.text
        yield client


@pytest.fixture
async def agent(ctx: Context) -> AsyncIterator[WebClient]:
    """A client signed in as agent@example.com (an admin exists too)."""
    await add_user(ctx, "boss@example.com", "admin", PASSWORD)
    await add_user(ctx, "agent@example.com", "agent", PASSWORD)
    async for client in web_client(ctx):
        answer = await client.sign_in("agent@example.com")
        assert answer.status_code == 303, answer.text
        yield client


async def api_client(ctx: Context, email: str, role: str) -> AsyncIterator[httpx2.AsyncClient]:
    """The REST API in-process, as a program with `email`'s API token calls it."""
    await add_user(ctx, email, role, PASSWORD)
    _, token = await create_token(ctx, email, "tests")
    app = create_app(ctx, run_workers=False)
    transport = httpx2.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(
        transport=transport, base_url=ctx.settings.base_url + "/api/v1", headers=headers
    ) as client:
        yield client


@pytest.fixture
async def admin_api(ctx: Context) -> AsyncIterator[httpx2.AsyncClient]:
    """The API with an admin's token (api-admin@example.com)."""
    async for client in api_client(ctx, "api-admin@example.com", "admin"):
        yield client


@pytest.fixture
async def agent_api(ctx: Context) -> AsyncIterator[httpx2.AsyncClient]:
    """The API with an agent's token (api-agent@example.com); an admin exists too."""
    await add_user(ctx, "api-boss@example.com", "admin", PASSWORD)
    async for client in api_client(ctx, "api-agent@example.com", "agent"):
        yield client
