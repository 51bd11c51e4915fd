"""Every request passes here first: body limit, who is asking, what they may open, CSRF, and the
security headers on every answer.

Access is denied by default: a route is open to anonymous visitors only if its path is in
`OPEN` (or under `--demo`, the emulator's pages), and open to agents only if it is in `AGENT`;
everything else needs an admin. A route added later is therefore admin-only until someone
decides otherwise (tests/web/test_route_table.py proves it over the whole route table).

A state-changing request (anything but GET, HEAD, OPTIONS) must come from mailgate's own pages:
a cross-site `Origin` or `Sec-Fetch-Site` is refused, and a signed-in request must carry the
session's CSRF token (a form's `csrf` field or an `X-CSRF-Token` header). The sign-in forms,
before a session exists, check a token in a cookie against the form's (see `account.py`).

Under /api/ a program may instead send an API token (`Authorization: Bearer`, see
`tracker/tokens.py`): no cookie goes with it, so no CSRF token is asked for; its user's role
decides what it may reach, as for a session. Every refusal there is a problem (RFC 9457).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from mailgate import actor
from mailgate.context import Context
from mailgate.store.vocabulary import Role
from mailgate.tracker.sessions import load_session
from mailgate.tracker.tokens import user_of_token
from mailgate.tracker.users import DEMO_ADMIN

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# __Host-: sent only to this host, path /, Secure; no sibling subdomain can plant one.
SESSION_COOKIE = "__Host-mailgate_session"
MAX_BODY = 1024 * 1024  # forms and JSON; nothing mailgate accepts over HTTP is bigger
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Open to anyone: sign-in, the one-time links (the unguessable token is the credential), the
# OAuth 2.0 start link and callback (the account owner may have no mailgate login), health.
OPEN_EXACT = frozenset(
    {"/login", "/oauth2/start", "/oauth2/callback", "/healthz", "/readyz", "/metrics"}
)
OPEN_PREFIXES = ("/static/", "/welcome/")
DEMO_PREFIX = "/demo-idp/"
# Open to agents as well as admins: the desk, on the pages and in the API. Everything else is
# the admins'.
API_PREFIX = "/api/"
AGENT_EXACT = frozenset(
    {
        "/logout",
        "/account",
        "/issues",
        "/quarantine",
        "/api/v1/issues",
        "/api/v1/quarantine",
        "/api/v1/me",
        "/api/v1/openapi.json",
        "/api/v1/docs",
    }
)
AGENT_PREFIXES = ("/issues/", "/quarantine/", "/account/", "/api/v1/issues/", "/api/v1/quarantine/")

HEADERS = [
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# form-action: an Authorize button posts to mailgate, which redirects to the provider (over
# https, or on loopback, where a test or development provider may answer over http).
CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    b"form-action 'self' https: http://localhost:* http://127.0.0.1:*"
)


def is_open(path: str, demo: bool) -> bool:
    # `/oauth2/start/` too: it is answered by a redirect to `/oauth2/start`.
    if path in OPEN_EXACT or path.rstrip("/") in OPEN_EXACT or path.startswith(OPEN_PREFIXES):
        return True
    return demo and (path + "/").startswith(DEMO_PREFIX)


def agent_may_open(path: str) -> bool:
    return path.rstrip("/") in AGENT_EXACT or path.startswith(AGENT_PREFIXES)


def cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return str(v)
    return None


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Guard:
    def __init__(self, app: ASGIApp, ctx: Context, *, demo: bool = False) -> None:
        self.app = app
        self.ctx = ctx
        self.demo = demo
        base = urlsplit(ctx.settings.base_url)
        self.origin = f"{base.scheme}://{base.netloc}"
        self.prefix = base.path.rstrip("/")  # behind a proxy that serves mailgate under a path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route takes one: refused, not let through
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        path, method = scope["path"], scope["method"]
        api = path.startswith(API_PREFIX)
        length = header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await _answer(send, 413, "The request is too large.", api=api)
            return
        client = scope.get("client")
        address = client[0] if client else None
        actor.act_as(actor.Actor("anonymous", address))
        if method not in SAFE_METHODS and not self._same_origin(scope):
            await _answer(
                send,
                403,
                "Refused: this request came from another site. Open mailgate at its base URL, "
                f"{self.origin}, and try again (MAILGATE_BASE_URL sets it).",
                api=api,
            )
            return
        if self.demo and (path + "/").startswith(DEMO_PREFIX):
            await self.app(scope, receive, send)  # the emulator's pages bound their own bodies
            return
        body = None
        if method not in SAFE_METHODS:  # read here, bounded, whoever asks (chunked too)
            bounded = _bounded(receive)
            body = await _read_all(bounded)
            if body is None:
                await _answer(send, 413, "The request is too large.", api=api)
                return
            receive = _replay(body, bounded)
        if is_open(path, self.demo):
            await self.app(scope, receive, send)
            return
        bearer = _bearer(scope) if api else None
        if bearer is not None:  # a program with an API token: no cookie, so no CSRF to fear
            user = await user_of_token(self.ctx, bearer, address)
            if user is not None and not self.demo and user.email == DEMO_ADMIN:
                user = None  # a token made in a --demo run of this database ends with the demo
            if user is None:
                await _answer(
                    send,
                    401,
                    "The API token is not valid: it was revoked, its user is disabled, or it "
                    "was mistyped. Make a new one with `mailgate token create`.",
                    api=True,
                )
                return
            if user.role != Role.ADMIN and not agent_may_open(path):
                await _answer(send, 403, "Only an admin may do this.", api=True)
                return
            scope.setdefault("state", {}).update(user=user, web_session=None)
            actor.act_as(actor.Actor(user.email, address))
            await self.app(scope, receive, send)
            return
        token = cookie(scope, SESSION_COOKIE)
        found = await load_session(self.ctx, token) if token else None
        if found is not None and not self.demo and found[1].email == DEMO_ADMIN:
            found = None  # a session from a --demo run of this database ends with the demo
        if found is None:
            await self._anonymous(scope, send)
            return
        web_session, user = found
        if user.role != Role.ADMIN and not agent_may_open(path):
            if api:
                await _answer(send, 403, "Only an admin may do this.", api=True)
            else:
                await _refuse_agent(send, self.prefix)
            return
        if body is not None and not _csrf_ok(scope, body, web_session.csrf_token):
            await _answer(
                send,
                403,
                "The form has expired or did not come from mailgate: reload the page and try "
                "again.",
                api=api,
            )
            return
        scope.setdefault("state", {}).update(user=user, web_session=web_session)
        actor.act_as(actor.Actor(user.email, address))
        await self.app(scope, receive, send)

    def _same_origin(self, scope: Scope) -> bool:
        fetch_site = header(scope, b"sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return False
        origin = header(scope, b"origin")
        return origin is None or origin == self.origin

    async def _anonymous(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        if path.startswith(API_PREFIX):
            await _answer(
                send,
                401,
                "Send an API token (Authorization: Bearer TOKEN; `mailgate token create` makes "
                "one), or sign in.",
                api=True,
            )
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + ("?" + query if query else "")
        await _redirect(send, f"{self.prefix}/login?next={quote(target, safe='/')}")


def _csrf_ok(scope: Scope, body: bytes, expected: str) -> bool:
    given = header(scope, b"x-csrf-token")
    content_type = header(scope, b"content-type") or ""
    if given is None and content_type.startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get("csrf")
        given = values[0] if values else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _bounded(receive: Receive) -> Receive:
    """A body read past MAX_BODY (chunked, without a length) ends as a disconnect."""
    seen = 0

    async def read() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                return {"type": "http.disconnect"}
        return message

    return read


async def _read_all(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, rest: Receive) -> Receive:
    """The body read already, then the client's own messages: a streamed answer (live test
    steps) listens for the disconnect, which must come only when the client goes."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await rest()

    return receive


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {key.lower() for key, _ in headers}
            headers += [(k, v) for k, v in HEADERS if k not in present]
            if b"content-security-policy" not in present:
                headers.append((b"content-security-policy", CSP))
            if b"cache-control" not in present:
                headers.append((b"cache-control", b"no-store"))
            message["headers"] = headers
        await send(message)

    return sending


def _bearer(scope: Scope) -> str | None:
    given = header(scope, b"authorization")
    if given is None:
        return None
    scheme, _, token = given.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _answer(send: Send, status: int, text: str, *, api: bool = False) -> None:
    """A refusal: one sentence, or for the API a problem (RFC 9457) saying the same."""
    if api:
        body = problem_body(status, text)
        headers = [(b"content-type", b"application/problem+json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="mailgate"'))
    else:
        body = (text + "\n").encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def problem_body(status: int, detail: str) -> bytes:
    """An RFC 9457 problem: the status's own title, and the sentence that says what to do."""
    title = HTTPStatus(status).phrase
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


async def _refuse_agent(send: Send, prefix: str) -> None:
    """403 for an agent on an admin page, with the way to the desk (signing in takes agents
    there; this is for a bookmark or a shared link)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Admins only · '
        f'mailgate</title><link rel="stylesheet" href="{prefix}/static/mailgate.css"></head>'
        '<body class="plain"><main class="card narrow"><p class="brand">mailgate</p>'
        "<h1>Admins only</h1><p>Only an admin may open this page.</p>"
        f'<p><a href="{prefix}/issues">Go to the issues</a></p></main></body></html>\n'
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
