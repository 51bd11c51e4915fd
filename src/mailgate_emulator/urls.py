"""URLs the emulator hands out, correct when it is mounted under a path prefix.

Inside `app.mount("/demo-idp", create_app(state))` a request's `root_path` is `/demo-idp`, but
Starlette's `request.base_url` is the *outermost* app's root (it serves `url_for`), and inside the
emulator's own `Mount("/_emulator")` the root path grows again. So the emulator notes its root
path once, where a request enters it (`RootPathMarker`), and builds every URL from that.

Served to the public (`mailgate serve --demo`), the emulator is given its public URL instead: the
`Host` header is whatever the client wrote, and a discovery document, an ID token's issuer or a
device verification URI built from it would send a user's browser (or a cache in front of the
server) to a host of the client's choosing.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

_ROOT_KEY = "mailgate_emulator.root_path"
_BASE_KEY = "mailgate_emulator.public_url"


class RootPathMarker:
    """ASGI middleware: remember the root path the emulator app was entered with, or, given a
    `public_url`, that URL and its path (whatever the request's `Host` and root path say)."""

    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self.app = app
        self.public_url = public_url.rstrip("/") if public_url is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _ROOT_KEY not in scope:
            if self.public_url is None:
                scope = {**scope, _ROOT_KEY: scope.get("root_path", "")}
            else:
                root = urlsplit(self.public_url).path
                scope = {**scope, _ROOT_KEY: root, _BASE_KEY: self.public_url}
        await self.app(scope, receive, send)


def emulator_root(request: Request) -> str:
    """The path prefix the emulator is served under: `""` at the top, `/demo-idp` when mounted."""
    root = request.scope.get(_ROOT_KEY, request.scope.get("root_path", ""))
    return str(root).rstrip("/")


def emulator_base(request: Request) -> str:
    """The emulator's absolute base URL without a trailing slash, e.g. `http://host/demo-idp`:
    its public URL when it has one, else the one the request came in on."""
    public_url = request.scope.get(_BASE_KEY)
    if public_url is not None:
        return str(public_url)
    url = request.url
    return f"{url.scheme}://{url.netloc}{emulator_root(request)}"


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    """`url` with `params` added to its query (RFC 6749 §3.1.2: keep the existing query)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))
