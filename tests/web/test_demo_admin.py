"""`serve --demo`: the visitor is signed in as the demo admin, and every page says so."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailgate.context import Context
from mailgate.tracker.users import DEMO_ADMIN, list_users
from tests.support.web import WebClient, web_client


@pytest.fixture
async def demo(ctx: Context) -> AsyncIterator[WebClient]:
    async for client in web_client(ctx, demo=True):
        yield client


async def test_the_visitor_is_the_demo_admin_with_a_banner(ctx: Context, demo: WebClient) -> None:
    first = await demo.get("/")
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/"
    signed = await demo.get(first.headers["location"])
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    page = await demo.get("/")
    assert page.status_code == 200
    assert "You are signed in as the demo admin" in page.text
    assert [(u.email, u.role, u.password_hash) for u in await list_users(ctx)] == [
        (DEMO_ADMIN, "admin", None)
    ]


async def test_without_demo_there_is_no_banner_and_no_demo_admin(
    ctx: Context, admin: WebClient
) -> None:
    page = await admin.get("/")
    assert "demo admin" not in page.text
    assert DEMO_ADMIN not in [u.email for u in await list_users(ctx)]


async def test_a_demo_session_ends_with_the_demo(ctx: Context, demo: WebClient) -> None:
    await demo.get("/login")
    assert (await demo.get("/")).status_code == 200
    # The same database served without --demo: the visitor's demo session is no session.
    async for plain in web_client(ctx):
        plain.http.cookies = demo.http.cookies
        answer = await plain.get("/")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
