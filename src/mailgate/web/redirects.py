"""Redirects go to MAILGATE_BASE_URL, never to the request's `Host` header.

Starlette answers `/oauth2/start/` with a redirect to `/oauth2/start` built from the request's
URL, whose host is whatever the `Host` header said: anyone who can put a link in front of a user
(or poison a cache in front of mailgate) can make mailgate redirect to a host of their choosing.
Here the same redirect is made from the base URL; the routes are matched as Starlette does.
"""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send


def other_slash(path: str) -> str:
    """`path` with its trailing slash removed, or added."""
    return path.rstrip("/") if path.endswith("/") else path + "/"


def redirect_slashes_to_base_url(router: Router, base_url: str) -> None:
    """Replace `router`'s trailing-slash redirect by one to `base_url` (for mounted apps too:
    a mounted app's request path is the whole path from the root)."""
    router.redirect_slashes = False
    not_found: ASGIApp = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        target = _slash_target(router, scope)
        if target is None:
            await not_found(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        location = base_url.rstrip("/") + target + (f"?{query}" if query else "")
        await RedirectResponse(location, status_code=307)(scope, receive, send)

    router.default = default


def _slash_target(router: Router, scope: Scope) -> str | None:
    """The path with the other slash, if one of the router's routes takes it."""
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if path.removeprefix(root) in ("", "/"):
        return None
    candidate = {**scope, "path": other_slash(path)}
    if any(route.matches(candidate)[0] is not Match.NONE for route in router.routes):
        return other_slash(path)
    return None
