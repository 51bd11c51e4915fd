"""URLs the emulator hands out, correct when it is mounted under a path prefix.

Inside `app.mount("/demo-idp", create_app(state))` a request's `root_path` is `/demo-idp`, but
Starlette's `request.base_url` is the *outermost* app's root (it serves `url_for`), and inside the
emulator's own `Mount("/_emulator")` the root path grows again. So the emulator notes its root
path once, where a request enters it (`RootPathMarker`), and builds every URL from that.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

_ROOT_KEY = "mailgate_emulator.root_path"


class RootPathMarker:
    """ASGI middleware: remember the root path the emulator app was entered with."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _ROOT_KEY not in scope:
            scope = {**scope, _ROOT_KEY: scope.get("root_path", "")}
        await self.app(scope, receive, send)


def emulator_root(request: Request) -> str:
    """The path prefix the emulator is served under: `""` at the top, `/demo-idp` when mounted."""
    root = request.scope.get(_ROOT_KEY, request.scope.get("root_path", ""))
    return str(root).rstrip("/")


def emulator_base(request: Request) -> str:
    """The emulator's absolute base URL without a trailing slash, e.g. `http://host/demo-idp`."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{emulator_root(request)}"


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    """`url` with `params` added to its query (RFC 6749 §3.1.2: keep the existing query)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))
