"""Webhook deliveries: POST each queued event to its webhook, signed as the Standard Webhooks
specification says (https://www.standardwebhooks.com), retried until the receiver answers 2xx.

- A delivery is claimed with a lease (several workers share the queue without sending one
  twice on purpose), and its lease renewed just before its POST; no database transaction is
  open during the HTTP request. A worker killed after the POST and before recording it leaves
  the lease to expire: the delivery is sent again with the same `webhook-id`. That is at least
  once; receivers de-duplicate on the id.
- The signature covers the exact stored body: `v1,` + base64(HMAC-SHA256(secret,
  "{webhook-id}.{webhook-timestamp}.{body}")), the secret being the base64 after `whsec_`;
  it is made at each attempt, with the webhook's current secret and the attempt's time.
- 2xx: delivered. 410 Gone: the receiver wants no more (the spec: stop sending), so the delivery
  is dead and the webhook made inactive. Anything else — another status, a redirect (never
  followed), refused connection, timeout, TLS failure — is retried with backoff (30 s doubling
  to every 4 hours, or the receiver's Retry-After) until three days after it was queued: then it
  is dead, and Retry on the webhook's page queues it again. Whatever else goes wrong with one
  delivery (its webhook's secret can't be decrypted, the client refuses the URL, an error
  nobody foresaw) is a failed attempt too, with its sentence and the same backoff: it never
  escapes, which would leave the delivery untried to be claimed again after every lease.
- A webhook's deliveries go in the order they were queued while its receiver answers: one
  receiver that can't be reached holds back the rest of its batch behind the first; one
  delivery refused with a status does not hold back the others.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import random
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from itertools import groupby

import httpx2
import structlog
from sqlalchemy import or_, select, update

from mailgate import __version__
from mailgate.backoff import delay
from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.outbound.outbox import owner_id
from mailgate.store import audit
from mailgate.store.models import Webhook, WebhookDelivery
from mailgate.store.vocabulary import DeliveryStatus
from mailgate.trust import tls_context

log = structlog.get_logger(__name__)

USER_AGENT = f"mailgate/{__version__}"
TIMEOUT = 10.0  # seconds for a whole POST: connect, TLS, send, the answer
MAX_ANSWER = 64 * 1024  # of the receiver's body, read and thrown away
LEASE = timedelta(minutes=2)  # renewed before each POST: far longer than one takes
BATCH = 100
GIVE_UP_AFTER = timedelta(days=3)
FIRST_RETRY = 30.0
LONGEST_WAIT = 4 * 3600.0
RECORD_TRIES = 5
_rng = random.Random()

WebhookClient = Callable[[], httpx2.AsyncClient]


def webhook_client() -> httpx2.AsyncClient:
    """The HTTP client of deliveries: TLS verified against the system's trust store (and
    mailgate's development certificate), HTTPS_PROXY honoured, redirects never followed."""
    return httpx2.AsyncClient(
        verify=tls_context(),
        trust_env=True,
        timeout=httpx2.Timeout(TIMEOUT),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


# -- the protocol: pure ---------------------------------------------------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret: the bytes its base64 stands for."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(key: bytes, delivery_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: the content to sign is `{msg_id}.{timestamp}.{payload}`."""
    signed = f"{delivery_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, delivery_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, delivery_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True)
class Attempt:
    """What became of one POST."""

    status: int | None = None  # the receiver's HTTP status; None when there was no answer
    error: str | None = None  # one sentence when it failed
    reachable: bool = True  # False: no connection (the rest of the batch would fail too)
    retry_after: float | None = None  # seconds the receiver asked us to wait

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == HTTPStatus.GONE


def answered(status: int, retry_after: str | None = None, now: datetime | None = None) -> Attempt:
    """An answer with `status` (and its Retry-After, read at `now`), as an attempt's outcome."""
    if 200 <= status < 300:
        return Attempt(status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "an unknown status"
    error = f"The receiver answered {status} {phrase}."
    if 300 <= status < 400:
        error = (
            f"The receiver answered {status} {phrase}: redirects are not followed, so give the "
            "webhook the URL it points to."
        )
    elif status == HTTPStatus.GONE:
        error = (
            "The receiver answered 410 Gone: it wants no more deliveries, so the webhook was "
            "made inactive."
        )
    return Attempt(status, error, retry_after=_seconds(retry_after, now))


def _seconds(retry_after: str | None, now: datetime | None) -> float | None:
    """Retry-After: a number of seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not retry_after:
        return None
    value = retry_after.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if now is None or moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def failed_to_connect(url: str, exc: httpx2.HTTPError) -> Attempt:
    """No answer: why, in one sentence, from the exception (its causes included)."""
    where = _where(url)
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(c) for c in chain)
    if isinstance(exc, httpx2.TimeoutException):
        sentence = f"No answer from {where} within {TIMEOUT:.0f} seconds (timeout)."
    elif any(isinstance(c, ssl.SSLCertVerificationError) for c in chain) or (
        "CERTIFICATE_VERIFY_FAILED" in text
    ):
        sentence = (
            f"TLS failed: the certificate of {where} is not trusted (a private CA goes in the "
            "system's trust store, or SSL_CERT_FILE)."
        )
    elif any(isinstance(c, ssl.SSLError) for c in chain) or "SSL" in text:
        sentence = f"TLS failed with {where}."
    elif any(isinstance(c, ConnectionRefusedError) for c in chain) or "refused" in text.lower():
        sentence = f"Connection refused by {where}."
    elif any(isinstance(c, socket.gaierror) for c in chain) or "Name or service" in text:
        sentence = f"The host name of {where} could not be resolved."
    elif isinstance(exc, httpx2.ConnectError):
        sentence = f"Could not connect to {where}."
    else:
        sentence = f"The connection to {where} failed before an answer ({type(exc).__name__})."
    return Attempt(None, sentence, reachable=False)


def _where(url: str) -> str:
    parts = httpx2.URL(url)
    return f"{parts.host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def next_wait(attempts: int, attempt: Attempt) -> float:
    """Seconds until the next try: 30 s doubling to every 4 hours (with jitter), or longer when
    the receiver asked for it (429, 503 with Retry-After)."""
    wait = delay(attempts, FIRST_RETRY, LONGEST_WAIT, _rng)
    if attempt.retry_after is not None:
        wait = max(wait, min(attempt.retry_after, LONGEST_WAIT))
    return wait


# -- one POST ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this worker, with what sending it needs."""

    id: int
    delivery_id: str
    webhook_id: int
    webhook: str
    url: str
    secret_enc: str
    payload: str
    attempts: int
    created_at: datetime


async def post(
    client: httpx2.AsyncClient, delivery: Claimed, secret: str, now: datetime
) -> Attempt:
    """POST one delivery, signed for `now`; the answer's body is read (at most 64 KB) and
    thrown away. The whole exchange has `TIMEOUT` seconds: a receiver that trickles its answer
    does not hold the worker longer."""
    timestamp = int(now.timestamp())
    sent = headers(secret_key(secret), delivery.delivery_id, timestamp, delivery.payload)
    try:
        async with (
            asyncio.timeout(TIMEOUT),
            client.stream(
                "POST", delivery.url, content=delivery.payload.encode(), headers=sent
            ) as response,
        ):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_ANSWER:
                    break
            return answered(response.status_code, response.headers.get("retry-after"), now)
    except TimeoutError:
        where = _where(delivery.url)
        return Attempt(
            None, f"No answer from {where} within {TIMEOUT:.0f} seconds (timeout).", reachable=False
        )
    except httpx2.HTTPError as exc:
        return failed_to_connect(delivery.url, exc)


# -- the queue -----------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, int]:
        return {
            "delivered": len(self.delivered),
            "retrying": len(self.retrying),
            "dead": len(self.dead),
        }


async def claim(ctx: Context, owner: str) -> list[Claimed]:
    """Due deliveries of active webhooks, oldest first, leased to `owner` (a conditional UPDATE
    each: one worker wins). A webhook with a delivery in flight elsewhere is left alone, so
    its deliveries keep their order."""
    now = ctx.clock()
    d = WebhookDelivery
    free = or_(d.lease_until.is_(None), d.lease_until < now)
    # Not correlated: worked out once per claim, however long the queue.
    in_flight = select(d.webhook_id).where(d.status == DeliveryStatus.PENDING, d.lease_until >= now)
    async with ctx.db.session() as session, session.begin():
        candidates = (
            await session.scalars(
                select(d.id)
                .join(Webhook, Webhook.id == d.webhook_id)
                .where(
                    d.status == DeliveryStatus.PENDING,
                    d.next_attempt_at <= now,
                    Webhook.active.is_(True),
                    free,
                    d.webhook_id.not_in(in_flight),
                )
                .order_by(d.id)
                .limit(BATCH)
            )
        ).all()
        claimed = []
        for delivery in candidates:
            result = await session.execute(
                update(d)
                .where(d.id == delivery, d.status == DeliveryStatus.PENDING, free)
                .values(lease_owner=owner, lease_until=now + LEASE)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(delivery)
        if not claimed:
            return []
        rows = (
            await session.execute(
                select(d, Webhook)
                .join(Webhook, Webhook.id == d.webhook_id)
                .where(d.id.in_(claimed))
                .order_by(d.id)
            )
        ).all()
    return [
        Claimed(
            id=row.id,
            delivery_id=row.delivery_id,
            webhook_id=hook.id,
            webhook=hook.name,
            url=hook.url,
            secret_enc=hook.secret_enc,
            payload=row.payload,
            attempts=row.attempts,
            created_at=row.created_at,
        )
        for row, hook in rows
    ]


async def deliver_due(ctx: Context, client: WebhookClient = webhook_client) -> DeliveryReport:
    """Send every delivery that is due; returns what became of them. Each webhook's
    deliveries go one after the other; webhooks side by side (a slow receiver holds up only
    its own)."""
    report = DeliveryReport()
    owner = owner_id()
    batch = await claim(ctx, owner)
    if not batch:
        return report  # no HTTP client made: the supervisor asks every few seconds
    async with client() as http:
        while batch:
            by_webhook = [list(g) for _, g in groupby(sorted(batch, key=_order), _webhook_of)]
            done = await asyncio.gather(
                *(_send_in_order(ctx, http, g, owner, report) for g in by_webhook),
                return_exceptions=True,
            )
            for group, outcome in zip(by_webhook, done, strict=True):
                if isinstance(outcome, BaseException):  # its leases expire; tried again then
                    log.error(
                        "webhook deliveries failed", webhook=group[0].webhook, exc_info=outcome
                    )
            batch = await claim(ctx, owner) if len(batch) == BATCH else []
    return report


def _order(delivery: Claimed) -> tuple[int, int]:
    return delivery.webhook_id, delivery.id


def _webhook_of(delivery: Claimed) -> int:
    return delivery.webhook_id


async def _send_in_order(
    ctx: Context,
    http: httpx2.AsyncClient,
    deliveries: list[Claimed],
    owner: str,
    report: DeliveryReport,
) -> None:
    """One webhook's deliveries, one after the other."""
    for index, delivery in enumerate(deliveries):
        if not await _still_ours(ctx, delivery, owner):
            continue  # its lease ran out and another worker took it, or it was deleted
        attempt = await _attempt(ctx, http, delivery)
        retry_at = await _record(ctx, delivery, attempt, report)
        if attempt.gone or not attempt.reachable:
            # The rest would meet the same: they wait behind this one, in their order.
            rest = [d.id for d in deliveries[index + 1 :]]
            await _hold_back(ctx, rest, owner, retry_at)
            return


UNREADABLE_SECRET = (
    "The webhook's secret cannot be decrypted with the configured keys: give mailgate the key "
    "it was encrypted with (MAILGATE_SECRET_KEYS or the key file under MAILGATE_HOME), or give "
    "the webhook a new secret."
)


async def _attempt(ctx: Context, http: httpx2.AsyncClient, delivery: Claimed) -> Attempt:
    """POST one delivery; anything that goes wrong is a failed attempt (the rest of the
    webhook's batch would meet the same, so they wait behind it)."""
    try:
        secret = ctx.secrets.decrypt(delivery.secret_enc)
    except (MailgateError, ValueError):  # a wrong key, or a value that is no ciphertext
        return Attempt(None, UNREADABLE_SECRET, reachable=False)
    try:
        return await post(http, delivery, secret, ctx.clock())
    except httpx2.InvalidURL as exc:  # not an HTTPError: `post` lets it through
        reason = str(exc).rstrip(".")
        error = (
            f"The HTTP client refuses the webhook's URL ({reason}): give the webhook its "
            "receiver's https:// address again."
        )
    except Exception as exc:  # one delivery's failure, recorded as such and logged
        log.error("webhook delivery failed", webhook=delivery.webhook, exc_info=exc)
        error = (
            f"Sending failed unexpectedly ({type(exc).__name__}): mailgate's log has the details."
        )
    return Attempt(None, error, reachable=False)


async def _still_ours(ctx: Context, delivery: Claimed, owner: str) -> bool:
    """Renew the lease just before the POST; False when another worker has the delivery."""
    async with ctx.db.session() as session, session.begin():
        result = await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.lease_owner == owner,
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(lease_until=ctx.clock() + LEASE)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def _record(
    ctx: Context, delivery: Claimed, attempt: Attempt, report: DeliveryReport
) -> datetime | None:
    """Write what the attempt did; returns when it is tried next (None: it is not). Once the
    receiver has a delivery, recording that must not fail (it would be sent again): a failing
    write is tried again a few times."""
    now = ctx.clock()
    attempts = delivery.attempts + 1
    retry_at = None
    values: dict[str, object] = {
        "attempts": attempts,
        "response_status": attempt.status,
        "last_error": attempt.error,
        "lease_owner": None,
        "lease_until": None,
    }
    if attempt.delivered:
        values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
        report.delivered.append(delivery.delivery_id)
    elif attempt.gone or now - delivery.created_at >= GIVE_UP_AFTER:
        values |= {"status": DeliveryStatus.DEAD}
        report.dead.append(delivery.delivery_id)
    else:
        retry_at = now + timedelta(seconds=next_wait(attempts, attempt))
        values |= {"next_attempt_at": retry_at}
        report.retrying.append(delivery.delivery_id)
    for tries in range(1, RECORD_TRIES + 1):
        try:
            await _write(ctx, delivery, values, gone=attempt.gone, now=now)
            break
        except Exception:
            if tries == RECORD_TRIES:
                raise
            log.warning("recording a webhook delivery failed; trying again", id=delivery.id)
            await ctx.sleep(0.5 * tries)
    outcome = "delivered" if attempt.delivered else "not delivered"
    log.info(f"webhook {outcome}", webhook=delivery.webhook, id=delivery.delivery_id)
    return retry_at


async def _write(
    ctx: Context, delivery: Claimed, values: dict[str, object], *, gone: bool, now: datetime
) -> None:
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(values)
        )
        if gone:  # the spec: "Sender should disable the webhook endpoint"
            changed = await session.execute(
                update(Webhook)
                .where(Webhook.id == delivery.webhook_id, Webhook.active.is_(True))
                .values(active=False, updated_at=now)
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                detail = "active: the receiver answered 410 Gone"
                await session.run_sync(audit.record, now, "webhook.set", delivery.webhook, detail)


async def _hold_back(ctx: Context, ids: list[int], owner: str, until: datetime | None) -> None:
    """Give back the leases of deliveries not tried; due again with the one that failed."""
    if not ids:
        return
    values: dict[str, object] = {"lease_owner": None, "lease_until": None}
    if until is not None:
        values["next_attempt_at"] = until
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), WebhookDelivery.lease_owner == owner)
            .values(values)
        )
