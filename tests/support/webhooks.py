"""Webhook tests' helpers: a receiver on loopback (the standard library's HTTP server, in a
thread; the `receiver` fixture) that records every request it gets and answers the statuses a
test queues (200 once the queue is empty) — it can be stopped and started again on the same
port, as a receiver that goes down and comes back, and serves HTTPS given a TLS context — and
mail taken through the inbound pipeline."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination

HELP = Destination(project="HELP", own_addresses=("support@example.com",))


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: str

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> Any:
        """The body as JSON once `standardwebhooks` verified the signature (it checks that the
        timestamp is within 5 minutes of now: for deliveries signed at the real time)."""
        return Webhook(secret).verify(self.body, self.headers)

    def signed_with(self, secret: str) -> bool:
        """The signature is the one `standardwebhooks` makes for these headers and body, at
        whatever time they say (for deliveries signed on a clock moved ahead)."""
        moment = datetime.fromtimestamp(int(self.headers["webhook-timestamp"]), UTC)
        expected = Webhook(secret).sign(self.id, moment, self.body)
        return expected in self.headers["webhook-signature"].split(" ")


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.answers: list[int] = []
        self.tls = tls
        self.port = 0
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}/hooks/mailgate"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(headers, body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                answer = b"thanks" if status < 300 else b"not now"
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        server = HTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: the port refuses connections until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def mail(subject: str, number: int, *, reply_to: int | None = None, body: str = "Hi") -> bytes:
    """A customer's message <mNUMBER@example.net>, a reply to <mREPLY_TO@…> if given."""
    lines = [
        "From: Carol Customer <carol@example.net>",
        "To: support@example.com",
        f"Subject: {subject}",
        f"Message-ID: <m{number}@example.net>",
    ]
    if reply_to is not None:
        lines += [
            f"In-Reply-To: <m{reply_to}@example.net>",
            f"References: <m{reply_to}@example.net>",
        ]
    return ("\r\n".join([*lines, "", body, ""])).encode()


async def take(ctx: Context, raw: bytes, destination: Destination = HELP) -> pipeline.Taken:
    """`raw` through the inbound pipeline, as `mailgate ingest` takes a file."""
    return await pipeline.take(
        ctx, None, pipeline.MessageRef(), raw, destination=destination, origin="test"
    )
