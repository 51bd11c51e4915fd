"""A notification waiting because its SMTP server's credential needs re-authorization goes out
at the next flush once the admin authorizes the account again, not after its backoff (up to a
quarter of an hour). Real Postfix, checking the tokens through Dovecot; the emulator's grant."""

from __future__ import annotations

import pytest
from tests.integration.test_smtp import BOB, queue_message, smtp_server, subjects
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.keeper import reauthorize
from tests.support.mail import ALICE
from tests.support.postfix import Postfix

from mailgate.context import Context
from mailgate.outbound import outbox


@pytest.mark.stores()
async def test_a_message_waiting_for_reauthorization_goes_out_at_once_when_authorized(
    ctx: Context, emulator: RunningEmulator, postfix: Postfix, clock: FakeClock
) -> None:
    setup = await smtp_server(ctx, emulator, postfix)
    await queue_message(ctx, BOB, "waiting for the admin")
    emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    report = await outbox.flush(ctx)
    assert report.waiting and not report.sent
    clock.advance(seconds=30)
    assert await outbox.flush(ctx) == outbox.FlushReport()  # waiting: not tried again yet
    emulator.state.advance(1)
    await reauthorize(ctx, emulator, setup)
    assert len((await outbox.flush(ctx)).sent) == 1  # no time passed: at once
    assert subjects(postfix.wait_for_delivery(BOB)) == ["waiting for the admin"]
