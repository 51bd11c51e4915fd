"""A bound on request bodies, for the emulator served to the public (`mailgate serve --demo`).

Its routes take small forms and JSON, but Starlette reads whatever body comes, whole, into memory:
a 300 MB body grew the server past 2 GB. `BodyLimit` answers 413 to a body over the limit before
the route sees it: at once when `Content-Length` announces it, else (a chunked body) as soon as the
bytes received pass the limit — the rest is never read, and the connection is closed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailgate_emulator.responses import json_response

MAX_FORM_BODY = 64 * 1024  # the forms and JSON of sign-in are a few KB at most


class _TooLarge(Exception):
    """The body passed the limit while the app was reading it."""


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, without reading it whole."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_FORM_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._announced_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if response_started:  # too late for a 413: let the server drop the connection
                raise
            await self._refuse(scope, receive, send)

    @staticmethod
    def _announced_length(scope: Scope) -> int:
        """The `Content-Length` header's value; 0 without one (the server has checked that it is
        a number: h11 and httptools refuse the request otherwise)."""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length" and value.strip().isdigit():
                return int(value)
        return 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"error": "request_too_large", "max_bytes": self.max_bytes}
        # `Connection: close` makes uvicorn stop reading rather than drain the rest for keep-alive.
        response = json_response(body, 413, headers={"Connection": "close"})
        await response(scope, receive, send)
