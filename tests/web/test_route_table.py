"""Every route of the app, taken from its route table, refuses an anonymous visitor unless it is
one of the few open ones; every admin route refuses an agent. A route added later is covered
without anyone remembering to add it here — the REST API's too: the table walks into the API
application mounted at /api/v1, where an anonymous caller gets 401 and an agent, by token or by
session, 403 everywhere but the desk."""

from __future__ import annotations

import re

import httpx2
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from mailgate.context import Context
from mailgate.web.api import PREFIX as API
from mailgate.web.app import create_app
from mailgate.web.guard import agent_may_open
from tests.support.web import WebClient

# INTERFACE.md's list of what is open without sign-in, and nothing else.
OPEN = {
    "/login",
    "/welcome/{token}",
    "/oauth2/start",
    "/oauth2/callback",
    "/healthz",
    "/readyz",
    "/metrics",
}
OPEN_MOUNTS = {"/static", "/demo-idp"}


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", template)


@pytest.mark.parametrize("demo", [False, True])
async def test_only_the_open_routes_answer_an_anonymous_visitor(ctx: Context, demo: bool) -> None:
    app = create_app(ctx, run_workers=False, demo=demo)
    table = _table(app)
    assert {path for _, path in table if path in OPEN} == OPEN, "an open route is missing"
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=ctx.settings.base_url
    ) as client:
        for method, template in table:
            mount = next((m for m in OPEN_MOUNTS if template.startswith(m + "/")), None)
            client.cookies.clear()  # under --demo, /login signs the visitor in
            answer = await client.request(method, concrete(template))
            refused = answer.status_code == 401 or (
                answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
            )
            if template in OPEN or (mount is not None and (demo or mount != "/demo-idp")):
                assert not refused, f"{method} {template} should be open"
            else:
                assert refused, f"{method} {template} answered {answer.status_code} to anyone"


async def test_every_admin_route_refuses_an_agent(ctx: Context, agent: WebClient) -> None:
    app = create_app(ctx, run_workers=False)
    for method, template in _table(app):
        path = concrete(template)
        if template in OPEN or template.startswith(tuple(OPEN_MOUNTS)) or agent_may_open(path):
            continue
        answer = await (agent.get(path) if method == "GET" else agent.post(path))
        assert answer.status_code == 403, (
            f"{method} {template} answered an agent {answer.status_code}"
        )


def _api_table(app: object) -> list[tuple[str, str]]:
    table = [(m, t) for m, t in _table(app) if t.startswith(API + "/")]
    assert len(table) > 40 and (("GET", API + "/mailboxes") in table), "the API is not walked"
    return table


async def _ask(client: httpx2.AsyncClient | WebClient, method: str, path: str) -> httpx2.Response:
    if isinstance(client, WebClient):  # a session: forms carry its CSRF token
        return await (client.get(path) if method == "GET" else client.post(path))
    return await client.request(method, path)


async def test_every_api_route_refuses_an_anonymous_caller_with_a_problem(ctx: Context) -> None:
    app = create_app(ctx, run_workers=False)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=ctx.settings.base_url
    ) as client:
        for method, template in _api_table(app):
            answer = await client.request(method, concrete(template))
            assert answer.status_code == 401, f"{method} {template}: {answer.status_code}"
            assert answer.headers["content-type"] == "application/problem+json"


async def test_an_agents_token_opens_the_desk_in_the_api_and_nothing_else(
    ctx: Context, agent_api: httpx2.AsyncClient
) -> None:
    await _only_the_desk(ctx, agent_api, based_at_api=True)


async def test_an_agents_session_opens_the_desk_in_the_api_and_nothing_else(
    ctx: Context, agent: WebClient
) -> None:
    await _only_the_desk(ctx, agent, based_at_api=False)


async def _only_the_desk(
    ctx: Context, client: httpx2.AsyncClient | WebClient, *, based_at_api: bool
) -> None:
    desk = []
    for method, template in _api_table(create_app(ctx, run_workers=False)):
        path = concrete(template)
        answer = await _ask(client, method, path[len(API) :] if based_at_api else path)
        if agent_may_open(path):
            desk.append(template)
            assert answer.status_code not in (401, 403), f"{method} {template} refused an agent"
        else:
            assert answer.status_code == 403, f"{method} {template} answered an agent"
            assert answer.headers["content-type"] == "application/problem+json"
    assert {API + "/quarantine", API + "/issues", API + "/docs"} <= set(desk)


def _table(app: object) -> list[tuple[str, str]]:
    return _walk(app.routes, "")  # type: ignore[attr-defined]


def _walk(routes: list[object], prefix: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's record of an included router
            inner = getattr(route.include_context, "prefix", "") or ""
            found += _walk(route.original_router.routes, prefix + inner)
        elif isinstance(route, Mount) and route.path == API:  # the REST API's own app
            found += _walk(route.app.routes, prefix + route.path)  # type: ignore[attr-defined]
        elif isinstance(route, Mount):
            found.append(("GET", prefix + route.path + "/anything"))
        elif isinstance(route, APIRoute | Route):
            methods = sorted(route.methods or {"GET"})
            found += [(m, prefix + route.path) for m in methods if m != "HEAD"]
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}")
    return found
