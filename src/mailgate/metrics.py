"""Prometheus metrics of one mailgate process, and the small HTTP server a worker shows them on.

What this process did, counted where it happens (`GET /metrics` of `mailgate serve`, or
`mailgate worker --metrics-port PORT`, adds the database's own counts by status):

    mailgate_messages_taken_total{mailbox}             messages recorded (committed) for the
                                                       first time, whatever they became
    mailgate_messages_quarantined_total{mailbox}       of those, the ones held in quarantine
    mailgate_token_refreshes_total{credential}         access tokens obtained from the token
                                                       endpoint
    mailgate_token_refresh_failures_total{credential,reason}
                                                       refreshes that failed, by who has to act
                                                       (`REFRESH_FAILURE_REASONS`)
    mailgate_idle_connections                          IMAP connections waiting in IDLE now
    mailgate_lease_moves_total                         mailboxes this process took over from
                                                       another worker
    mailgate_mail_to_issue_seconds                     from the poll that found a message
                                                       (right after IDLE's EXISTS) to the commit
                                                       of its issue or comment

Labels hold only what the configuration bounds: mailbox names (`mailgate.names`) and credential
ids; never a sender, a subject or anything else a message's author chooses. Files ingested with
`mailgate ingest` count under the mailbox "" (they came through none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from mailgate.errors import (
    BadInput,
    ClientRejected,
    NeedsAdmin,
    NeedsReauthorization,
    Transient,
)

# A `_created` series per label set would double what 1,000 mailboxes expose, for a timestamp
# Prometheus does not need (it sees a restart as a counter reset).
disable_created_metrics()  # type: ignore[no-untyped-call]

MESSAGES_TAKEN = Counter(
    "mailgate_messages_taken_total",
    "Messages recorded for the first time (issue, comment, ignored, duplicate or quarantined).",
    ["mailbox"],
)
MESSAGES_QUARANTINED = Counter(
    "mailgate_messages_quarantined_total",
    "Messages held in quarantine (mailgate could not or would not make them issues).",
    ["mailbox"],
)
TOKEN_REFRESHES = Counter(
    "mailgate_token_refreshes_total",
    "Access tokens obtained from the token endpoint.",
    ["credential"],
)
TOKEN_REFRESH_FAILURES = Counter(
    "mailgate_token_refresh_failures_total",
    "Token refreshes that failed, by reason.",
    ["credential", "reason"],
)
IDLE_CONNECTIONS = Gauge(
    "mailgate_idle_connections", "IMAP connections of this process waiting in IDLE."
)
LEASE_MOVES = Counter(
    "mailgate_lease_moves_total",
    "Mailboxes this process claimed whose lease another worker held last.",
)
MAIL_TO_ISSUE = Histogram(
    "mailgate_mail_to_issue_seconds",
    "From the poll that found a message to the commit of its issue or comment.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# The `reason` of a failed refresh: the error's branch of `mailgate.errors` (who has to act),
# most specific first; anything else is "error".
REFRESH_FAILURE_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (NeedsReauthorization, "needs_reauthorization"),
    (ClientRejected, "client_rejected"),
    (NeedsAdmin, "needs_admin"),
    (Transient, "transient"),
    (BadInput, "bad_input"),
)


def message_taken(mailbox: str, *, quarantined: bool) -> None:
    """Count one message recorded for the first time (after its transaction committed)."""
    MESSAGES_TAKEN.labels(mailbox).inc()
    if quarantined:
        MESSAGES_QUARANTINED.labels(mailbox).inc()


def mail_to_issue(seconds: float) -> None:
    """Observe one message's way from being found to its committed issue or comment."""
    MAIL_TO_ISSUE.observe(max(seconds, 0.0))  # a wall clock set back must not count below 0


def refresh_failure_reason(error: BaseException) -> str:
    for kind, reason in REFRESH_FAILURE_REASONS:
        if isinstance(error, kind):
            return reason
    return "error"


@contextmanager
def refresh_counted(credential_id: int) -> Iterator[None]:
    """Count the refresh done inside: obtained, or failed with its reason."""
    credential = str(credential_id)
    try:
        yield
    except Exception as error:
        TOKEN_REFRESH_FAILURES.labels(credential, refresh_failure_reason(error)).inc()
        raise
    TOKEN_REFRESHES.labels(credential).inc()


def exposition(extra: bytes = b"") -> bytes:
    """This process's metrics in Prometheus' text format, followed by `extra` (more families
    in the same format, e.g. the database's counts)."""
    return generate_latest() + extra


CONTENT_TYPE = CONTENT_TYPE_LATEST


def parse_address(text: str) -> tuple[str, int]:
    """`MAILGATE_METRICS_ADDRESS`: "PORT" (on 127.0.0.1), "HOST:PORT" or "[IPv6]:PORT"."""
    host, _, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(
            f"The metrics address {text!r} is not PORT or HOST:PORT (e.g. 9464 or "
            "0.0.0.0:9464): set MAILGATE_METRICS_ADDRESS or --metrics-port to one."
        )
    return host, int(port)


Extra = Callable[[], Awaitable[bytes]]
_REQUEST_LIMIT = 8192  # a request line and headers; a scraper sends a few hundred bytes
_REQUEST_SECONDS = 10.0


async def start_server(host: str, port: int, extra: Extra) -> asyncio.Server:
    """Answer `GET /metrics` on host:port with `exposition(await extra())`; anything else is
    404. Only counts are served (no names of people, no mail), and no request changes anything."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
                method, _, rest = head.partition(b" ")
                path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
                if method in (b"GET", b"HEAD") and path == b"/metrics":
                    status, kind, body = b"200 OK", CONTENT_TYPE, exposition(await extra())
                else:
                    status, kind, body = b"404 Not Found", "text/plain", b"GET /metrics\n"
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n" % (status, kind.encode(), len(body))
                )
                if method != b"HEAD":
                    writer.write(body)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sent no request, or went away: nothing to answer
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, limit=_REQUEST_LIMIT)
