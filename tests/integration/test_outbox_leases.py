"""The outbox's leases over a real Postfix, on the injected clock: a worker killed after claiming
holds its messages for a minute, not for the longest transaction; a message in its transaction
is never taken from a worker that is alive, nor is one another worker took touched by it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.test_smtp import BOB, subjects, three_queued
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.postfix import Postfix

from mailgate.context import Context
from mailgate.mail import smtp
from mailgate.outbound import outbox
from mailgate.store.models import OutboxMessage


async def rows(ctx: Context) -> list[OutboxMessage]:
    async with ctx.db.session() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_a_killed_workers_claims_go_to_another_worker_a_minute_later(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, clock: FakeClock
) -> None:
    await three_queued(ctx, emulator, postfix)
    # A worker claims the batch and is killed at once: nothing gives its claims back.
    abandoned = [m.id for m in await outbox._claim(ctx, "killed-worker")]
    assert len(abandoned) == 3
    assert await outbox.flush(ctx) == outbox.FlushReport()  # claimed, and the claim is fresh
    clock.advance(minutes=1, seconds=1)
    report = await outbox.flush(ctx)
    assert sorted(report.sent) == abandoned
    delivered = postfix.wait_for_delivery(BOB, count=3)
    assert sorted(subjects(delivered)) == ["message 0", "message 1", "message 2"]


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_message_in_its_transaction_is_not_taken_while_its_worker_sends_it(
    ctx: Context,
    emulator: RunningEmulator,
    postfix: Postfix,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await three_queued(ctx, emulator, postfix)
    real_transact = smtp.transact
    stalled: list[bool] = []
    others: list[outbox.FlushReport] = []

    async def slow_transaction(*args: Any, **kwargs: Any) -> tuple[str, dict[str, str]]:
        if not stalled:
            stalled.append(True)
            # The server takes ten minutes to answer DATA (RFC 5321 allows it): the claims of
            # the messages waiting behind this one run out, and another worker flushes.
            clock.advance(minutes=10)
            others.append(await outbox.flush(ctx))
        return await real_transact(*args, **kwargs)

    monkeypatch.setattr(smtp, "transact", slow_transaction)
    report = await outbox.flush(ctx)
    [other] = others
    assert report.sent == [1]  # its lease was renewed for the transaction: not taken
    assert other.sent == [2, 3]  # what was only waiting went on without it
    delivered = postfix.wait_for_delivery(BOB, count=3)
    assert sorted(subjects(delivered)) == ["message 0", "message 1", "message 2"]
    assert [(r.status, r.attempts) for r in await rows(ctx)] == [("sent", 1)] * 3


async def test_a_failing_worker_leaves_alone_what_another_worker_took(
    ctx: Context,
    emulator: RunningEmulator,
    postfix: Postfix,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await three_queued(ctx, emulator, postfix)
    taken: list[int] = []

    async def broken_connection(*_args: object, **_kwargs: object) -> None:
        clock.advance(minutes=10)
        taken.extend(m.id for m in await outbox._claim(ctx, "other-worker"))
        raise smtp.SmtpFailure("send", "connection reset", kind="connection")

    monkeypatch.setattr(smtp, "transact", broken_connection)
    report = await outbox.flush(ctx)
    assert taken == [2, 3]
    # Its own message failed and waits; the other worker's are still that worker's, untouched.
    assert (report.retrying, report.waiting, report.dead) == ([1], [], [])
    first, *rest = await rows(ctx)
    assert (first.lease_owner, first.attempts) == (None, 1)
    assert [(r.lease_owner, r.attempts, r.last_error) for r in rest] == [
        ("other-worker", 0, None)
    ] * 2
