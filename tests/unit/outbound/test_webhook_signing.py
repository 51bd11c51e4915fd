"""The pure parts of webhook delivery: the signature (checked against the `standardwebhooks`
package), what an answer or a failure to connect means, and how long the next try waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx2
from standardwebhooks import Webhook

from mailgate.outbound import webhooks
from mailgate.outbound.webhooks import answered, failed_to_connect, headers, secret_key
from mailgate.tracker.webhooks import new_secret

URL = "https://hooks.example.com/mailgate"


def test_the_signature_is_the_one_standard_webhooks_checks() -> None:
    secret = new_secret()
    body = '{"type":"ping","timestamp":"2026-12-03T05:00:00.000Z","data":{"webhook":"ünïcode"}}'
    now = int(datetime.now(UTC).timestamp())
    sent = headers(secret_key(secret), "msg_abc", now, body)
    assert Webhook(secret).verify(body, sent)["data"]["webhook"] == "ünïcode"
    other = headers(secret_key(new_secret()), "msg_abc", now, body)
    assert other["webhook-signature"] != sent["webhook-signature"]
    assert len(secret_key(secret)) == 32


def test_what_an_answer_means() -> None:
    assert answered(204).delivered and answered(204).error is None
    refused = answered(500)
    assert not refused.delivered and refused.reachable
    assert refused.error == "The receiver answered 500 Internal Server Error."
    moved = answered(301)
    assert not moved.delivered and "redirects are not followed" in str(moved.error)
    assert answered(410).gone and "made inactive" in str(answered(410).error)
    assert answered(599).error == "The receiver answered 599 an unknown status."
    now = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    assert answered(429, "120").retry_after == 120
    assert answered(503, "Thu, 03 Dec 2026 05:10:00 GMT", now).retry_after == 600
    assert answered(503, "soon").retry_after is None


def test_failures_to_connect_in_one_sentence() -> None:
    request = httpx2.Request("POST", URL)
    timeout = failed_to_connect(URL, httpx2.ReadTimeout("slow", request=request))
    assert timeout.error == "No answer from hooks.example.com:443 within 10 seconds (timeout)."
    assert not timeout.reachable
    try:
        raise httpx2.ConnectError("x", request=request) from ConnectionRefusedError(111, "no")
    except httpx2.ConnectError as exc:
        refused = failed_to_connect(URL, exc)
    assert refused.error == "Connection refused by hooks.example.com:443."
    untrusted = httpx2.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed", request=request)
    assert "is not trusted" in str(failed_to_connect(URL, untrusted).error)


def test_retries_back_off_to_every_four_hours_and_heed_retry_after() -> None:
    webhooks._rng.seed(7)
    waits = [webhooks.next_wait(n, answered(500)) for n in range(1, 20)]
    assert 15 <= waits[0] <= 30
    assert all(w <= 4 * 3600 for w in waits) and max(waits) > 3600
    assert timedelta(seconds=sum(waits)) < timedelta(days=3)  # many tries within the days
    asked = webhooks.next_wait(1, answered(429, "900"))
    assert asked == 900
    assert webhooks.next_wait(1, answered(429, str(10**9))) == 4 * 3600
