"""Webhook deliveries over real HTTP to a receiver on loopback, with time injected: signed as
Standard Webhooks says (checked with the `standardwebhooks` package), retried with backoff
while the receiver is down or failing, dead after three days, sent again on Retry, at least
once across a crash, and only to the webhooks that want the event."""

from __future__ import annotations

import json
import ssl
from datetime import datetime, timedelta

import httpx2
import pytest
import trustme
from cryptography.fernet import Fernet
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from tests.support.clock import FakeClock
from tests.support.webhooks import Receiver, mail, take

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.outbound.webhooks import (
    GIVE_UP_AFTER,
    LEASE,
    UNREADABLE_SECRET,
    USER_AGENT,
    claim,
    deliver_due,
    post,
    webhook_client,
)
from mailgate.store.models import Webhook, WebhookDelivery
from mailgate.store.secretbox import SecretBox
from mailgate.tracker.service import add_project
from mailgate.tracker.webhooks import (
    add_webhook,
    list_deliveries,
    retry_deliveries,
    send_test_event,
    set_webhook,
    show_webhook,
)

# Representative tests run on PostgreSQL too (the stores marker below); the rest on SQLite.

# A soft hyphen in the host: Python's URL parser takes it, the HTTP client refuses it (IDNA).
CLIENT_REFUSES = "https://exa\u00admple.com/hook"


@pytest.fixture
async def project(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help desk")


async def deliveries(ctx: Context, name: str = "desk") -> list[dict[str, object]]:
    return list(reversed(await list_deliveries(ctx, name)))  # oldest first


async def test_a_comment_is_delivered_signed_with_what_happened(
    ctx: Context, receiver: Receiver, project: None
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["comment.added"])
    await take(ctx, mail("Printer on fire", 1))
    await take(ctx, mail("Re: Printer on fire", 2, reply_to=1, body="Still burning."))

    report = await deliver_due(ctx)

    assert len(report.delivered) == 1
    [got] = receiver.received
    event = got.verified(secret)  # raises unless the signature and its timestamp are right
    assert event["type"] == "comment.added"
    assert event["data"]["issue"] == {
        "key": "HELP-1",
        "summary": "Printer on fire",
        "status": "open",
        "reporter": "carol@example.net",
        "project": "HELP",
        "url": "https://mailgate.test/issues/HELP-1",
    }
    assert event["data"]["comment"]["author"] == "carol@example.net"
    assert event["data"]["comment"]["body"].startswith("Still burning.")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.id.startswith("msg_") and "." not in got.id
    [row] = await deliveries(ctx)
    assert row["delivery_id"] == got.id
    assert (row["status"], row["attempts"], row["response_status"]) == ("delivered", 1, 200)
    assert (await show_webhook(ctx, "desk"))["last_delivery_status"] == "delivered"


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_receiver_that_is_down_gets_everything_in_order_once_it_is_back(
    ctx: Context, receiver: Receiver, clock: FakeClock, project: None
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    receiver.stop()
    for number in (1, 2, 3):
        await take(ctx, mail(f"Question {number}", number))

    report = await deliver_due(ctx)

    assert report.delivered == [] and len(report.retrying) == 1
    first, second, third = await deliveries(ctx)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert "Connection refused" in str(first["last_error"])
    # The others wait behind the first, untried, to keep their order.
    assert second["attempts"] == third["attempts"] == 0
    retry_at = datetime.fromisoformat(str(first["next_attempt_at"]))
    first_wait = retry_at - clock()
    assert timedelta(seconds=15) <= first_wait <= timedelta(seconds=30)

    assert (await deliver_due(ctx)).retrying == []  # nothing is due before then
    clock.advance(first_wait.total_seconds())
    await deliver_due(ctx)
    first = (await deliveries(ctx))[0]
    assert first["attempts"] == 2
    second_wait = datetime.fromisoformat(str(first["next_attempt_at"])) - clock()
    assert second_wait >= first_wait  # backing off

    receiver.start()  # on the same port
    clock.advance(second_wait.total_seconds())
    report = await deliver_due(ctx)

    assert len(report.delivered) == 3
    subjects = [got.verified(secret)["data"]["issue"]["summary"] for got in receiver.received]
    assert subjects == ["Question 1", "Question 2", "Question 3"]
    assert [got.id for got in receiver.received] == [
        d["delivery_id"] for d in await deliveries(ctx)
    ]


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_failing_receiver_gets_the_same_delivery_again_until_it_answers_2xx(
    ctx: Context, receiver: Receiver, clock: FakeClock, project: None
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    await take(ctx, mail("Printer on fire", 1))
    receiver.answers = [500, 302]

    await deliver_due(ctx)
    [row] = await deliveries(ctx)
    assert (row["status"], row["response_status"]) == ("pending", 500)
    assert row["last_error"] == "The receiver answered 500 Internal Server Error."
    clock.advance(minutes=1)
    await deliver_due(ctx)
    [row] = await deliveries(ctx)
    assert row["response_status"] == 302 and "redirects are not followed" in str(row["last_error"])
    clock.advance(minutes=2)
    await deliver_due(ctx)

    [row] = await deliveries(ctx)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 3, None)
    assert len(receiver.received) == 3
    assert {got.id for got in receiver.received} == {row["delivery_id"]}
    assert all(got.signed_with(secret) for got in receiver.received)
    # Each attempt is signed at its own time.
    stamps = [int(got.headers["webhook-timestamp"]) for got in receiver.received]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]


async def test_after_three_days_of_failures_a_delivery_is_dead_until_retried(
    ctx: Context, receiver: Receiver, clock: FakeClock, project: None
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    await take(ctx, mail("Printer on fire", 1))
    started = clock()
    receiver.answers = [503] * 1000
    while (await deliveries(ctx))[0]["status"] == "pending":
        await deliver_due(ctx)
        clock.advance(hours=1)
        assert clock() - started < GIVE_UP_AFTER + timedelta(days=1)

    [row] = await deliveries(ctx)
    assert row["status"] == "dead" and row["next_attempt_at"] is None
    assert clock() - started >= GIVE_UP_AFTER
    assert 10 < len(receiver.received) < 40  # backed off to hours apart, not every minute
    assert (await show_webhook(ctx, "desk"))["dead"] == 1
    assert (await deliver_due(ctx)).as_json() == {"delivered": 0, "retrying": 0, "dead": 0}

    receiver.answers.clear()
    assert await retry_deliveries(ctx, "desk") == 1
    report = await deliver_due(ctx)

    assert len(report.delivered) == 1
    assert receiver.received[-1].id == row["delivery_id"]
    assert receiver.received[-1].signed_with(secret)


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_crash_after_the_post_sends_it_again_with_the_same_id(
    ctx: Context, receiver: Receiver, clock: FakeClock, project: None
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    await take(ctx, mail("Printer on fire", 1))
    # A worker claims the delivery and POSTs it, then dies before recording it.
    [claimed] = await claim(ctx, "worker-that-dies")
    async with webhook_client() as client:
        attempt = await post(client, claimed, ctx.secrets.decrypt(claimed.secret_enc), clock())
    assert attempt.delivered

    assert (await deliver_due(ctx)).delivered == []  # its lease still holds it
    clock.advance(LEASE.total_seconds() + 1)
    report = await deliver_due(ctx)

    assert len(report.delivered) == 1
    first, again = receiver.received
    assert first.id == again.id == claimed.delivery_id  # receivers de-duplicate on it
    assert first.body == again.body
    assert again.verified(secret)["type"] == "issue.created"


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_delivery_in_flight_elsewhere_holds_back_the_later_ones(
    ctx: Context, receiver: Receiver, clock: FakeClock, project: None
) -> None:
    await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    await take(ctx, mail("First", 1))
    await take(ctx, mail("Second", 2))
    first_id = min(await ctx.db.read(lambda s: s.scalars(select(WebhookDelivery.id)).all()))

    def lease_first(session: Session) -> None:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == first_id)
            .values(lease_owner="another-worker", lease_until=clock() + LEASE)
        )

    await ctx.db.run(lease_first)  # another worker is sending the first
    assert (await deliver_due(ctx)).delivered == []  # the second waits its turn
    clock.advance(LEASE.total_seconds() + 1)  # that worker died
    assert len((await deliver_due(ctx)).delivered) == 2
    assert [json.loads(got.body)["data"]["issue"]["summary"] for got in receiver.received] == [
        "First",
        "Second",
    ]


async def test_only_active_webhooks_that_want_the_event_get_it(
    ctx: Context, receiver: Receiver, project: None
) -> None:
    await add_webhook(ctx, "paused", receiver.url, ["issue.created"], active=False)
    await add_webhook(ctx, "comments", receiver.url, ["comment.added"])
    await add_webhook(ctx, "desk", receiver.url, ["issue.created", "comment.added"])

    await take(ctx, mail("Printer on fire", 1))
    await deliver_due(ctx)

    assert len(receiver.received) == 1
    assert await list_deliveries(ctx, "paused") == []
    assert await list_deliveries(ctx, "comments") == []
    assert len(await list_deliveries(ctx, "desk")) == 1
    # Made inactive with a delivery waiting: it waits, and goes once active again.
    await take(ctx, mail("Printer on fire again", 2))
    await set_webhook(ctx, "desk", active=False)
    assert (await deliver_due(ctx)).delivered == []
    await set_webhook(ctx, "desk", active=True)
    assert len((await deliver_due(ctx)).delivered) == 1


async def test_410_gone_stops_the_webhook(ctx: Context, receiver: Receiver, project: None) -> None:
    await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    receiver.answers = [410]
    await take(ctx, mail("Printer on fire", 1))

    report = await deliver_due(ctx)

    assert len(report.dead) == 1
    [row] = await deliveries(ctx)
    assert row["status"] == "dead" and "410 Gone" in str(row["last_error"])
    assert (await show_webhook(ctx, "desk"))["active"] is False
    await take(ctx, mail("Another", 2))
    count = await ctx.db.read(lambda s: s.scalar(select(func.count()).select_from(WebhookDelivery)))
    assert count == 1  # an inactive webhook is queued nothing


async def test_a_test_event_goes_to_one_webhook_whatever_it_subscribes_to(
    ctx: Context, receiver: Receiver
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["credential.needs-attention"])
    delivery_id = await send_test_event(ctx, "desk")
    await deliver_due(ctx)
    [got] = receiver.received
    assert got.id == delivery_id
    assert got.verified(secret) == {
        "type": "ping",
        "timestamp": got.verified(secret)["timestamp"],
        "data": {"webhook": "desk", "message": "A test event from mailgate."},
    }


async def test_tls_is_verified(ctx: Context) -> None:
    ca = trustme.CA()
    server_tls = ca.issue_cert("localhost", "127.0.0.1").configure_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls(context)
    receiver = Receiver(tls=context).start()
    try:
        _, secret = await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
        await send_test_event(ctx, "desk")
        await deliver_due(ctx)
        [row] = await deliveries(ctx)
        assert row["status"] == "pending" and receiver.received == []
        assert "TLS failed: the certificate of localhost" in str(row["last_error"])

        def trusting() -> httpx2.AsyncClient:
            client_tls = ssl.create_default_context()
            ca.configure_trust(client_tls)
            return httpx2.AsyncClient(verify=client_tls, follow_redirects=False)

        await retry_deliveries(ctx, "desk", str(row["delivery_id"]))
        assert len((await deliver_due(ctx, trusting)).delivered) == 1
        assert receiver.received[0].verified(secret)["type"] == "ping"
    finally:
        receiver.stop()


async def test_a_url_the_http_client_refuses_is_refused_when_given(ctx: Context) -> None:
    with pytest.raises(BadInput, match="is not a URL deliveries can be sent to"):
        await add_webhook(ctx, "desk", CLIENT_REFUSES, ["issue.created"])
    await add_webhook(ctx, "desk", "https://hooks.example.com/mailgate", ["issue.created"])
    with pytest.raises(BadInput, match="is not a URL deliveries can be sent to"):
        await set_webhook(ctx, "desk", url=CLIENT_REFUSES)


async def change_stored(ctx: Context, name: str, **values: str) -> None:
    """Write to a webhook's row as a bug or an older version might have left it."""

    def change(session: Session) -> None:
        session.execute(update(Webhook).where(Webhook.name == name).values(values))

    await ctx.db.run(change)


async def assert_failed_once(ctx: Context, clock: FakeClock, name: str = "desk") -> str:
    """The delivery was tried once, failed, and waits its backoff; returns its error."""
    first, *rest = await deliveries(ctx, name)
    assert (first["status"], first["attempts"], first["response_status"]) == ("pending", 1, None)
    wait = datetime.fromisoformat(str(first["next_attempt_at"])) - clock()
    assert timedelta(seconds=15) <= wait <= timedelta(seconds=30)
    assert all(later["attempts"] == 0 for later in rest)  # waiting behind it, in order
    return str(first["last_error"])


async def test_a_stored_url_the_client_refuses_is_a_failed_attempt(
    ctx: Context, clock: FakeClock, project: None
) -> None:
    await add_webhook(ctx, "desk", "https://hooks.example.com/mailgate", ["issue.created"])
    await change_stored(ctx, "desk", url=CLIENT_REFUSES)
    await take(ctx, mail("Printer on fire", 1))
    await take(ctx, mail("Printer on fire again", 2))

    report = await deliver_due(ctx)

    assert len(report.retrying) == 1 and report.delivered == report.dead == []
    error = await assert_failed_once(ctx, clock)
    assert error.startswith("The HTTP client refuses the webhook's URL (Invalid IDNA hostname")
    assert (await deliver_due(ctx)).retrying == []  # not claimed again before its time
    clock.advance(minutes=1)
    await deliver_due(ctx)
    assert (await deliveries(ctx))[0]["attempts"] == 2


async def test_a_secret_that_cannot_be_decrypted_fails_only_its_webhook(
    ctx: Context, receiver: Receiver, clock: FakeClock, project: None
) -> None:
    _, secret = await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    await add_webhook(ctx, "lost", receiver.url, ["issue.created"])
    lost_key = SecretBox([Fernet.generate_key()])  # a key mailgate was never given
    await change_stored(ctx, "lost", secret_enc=lost_key.encrypt("whsec_c2VjcmV0"))
    await take(ctx, mail("Printer on fire", 1))

    report = await deliver_due(ctx)

    assert len(report.delivered) == 1 and len(report.retrying) == 1
    assert receiver.received[0].verified(secret)["type"] == "issue.created"
    assert await assert_failed_once(ctx, clock, "lost") == UNREADABLE_SECRET
    assert (await show_webhook(ctx, "lost"))["last_error"] == UNREADABLE_SECRET


async def test_an_error_nobody_foresaw_is_a_failed_attempt(
    ctx: Context, clock: FakeClock, project: None
) -> None:
    await add_webhook(ctx, "desk", "https://hooks.example.com/mailgate", ["issue.created"])
    await take(ctx, mail("Printer on fire", 1))

    def broken(request: httpx2.Request) -> httpx2.Response:
        raise RuntimeError("a bug in the HTTP client")

    def client() -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(broken))

    report = await deliver_due(ctx, client)

    assert len(report.retrying) == 1
    error = await assert_failed_once(ctx, clock)
    assert error == "Sending failed unexpectedly (RuntimeError): mailgate's log has the details."
