"""Every route of the app, taken from its route table, refuses an anonymous visitor unless it is
one of the few open ones; every admin route refuses an agent. A route added later is covered
without anyone remembering to add it here."""

from __future__ import annotations

import re

import httpx2
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from mailgate.context import Context
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


def _table(app: object) -> list[tuple[str, str]]:
    return _walk(app.routes, "")  # type: ignore[attr-defined]


def _walk(routes: list[object], prefix: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's record of an included router
            inner = getattr(route.include_context, "prefix", "") or ""
            found += _walk(route.original_router.routes, prefix + inner)
        elif isinstance(route, Mount):
            found.append(("GET", prefix + route.path + "/anything"))
        elif isinstance(route, APIRoute | Route):
            methods = sorted(route.methods or {"GET"})
            found += [(m, prefix + route.path) for m in methods if m != "HEAD"]
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}")
    return found
