"""Mailboxes in the running process: the supervisor reads them, and leases keep two processes
from reading one mailbox at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, message, wait_for_receipts, with_mailbox

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.errors import OperationFailed
from mailgate.runtime import leases
from mailgate.runtime.imap_mailbox import poll_once, receipts_of
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.models import Mailbox

pytestmark = pytest.mark.stores("sqlite", "postgresql")


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Context]:
    """A context on the real clock and real sleep, like a running process."""
    ctx = Context.open(settings)
    yield ctx
    await ctx.close()


async def test_supervisor_reads_the_mailbox(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    row = await with_mailbox(live, emulator, dovecot, poll_seconds=3600)
    supervisor = Supervisor(live)
    running = asyncio.create_task(supervisor.run())
    try:
        await asyncio.to_thread(dovecot.deliver, ALICE, message("via the supervisor"))
        await wait_for_receipts(live, row.id, 1)
        async with live.db.session() as session:
            held = await session.get(Mailbox, row.id)
            assert held is not None and held.lease_owner == supervisor.keeper.owner
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 20)
    async with live.db.session() as session:
        released = await session.get(Mailbox, row.id, populate_existing=True)
        assert released is not None and released.lease_owner is None


async def test_poll_takes_over_from_a_dead_holder(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    row = await with_mailbox(live, emulator, dovecot)
    dovecot.deliver(ALICE, message("waiting"))
    async with live.db.session() as session, session.begin():
        held = await session.get(Mailbox, row.id)
        assert held is not None
        held.lease_owner = "a-worker-that-died"
        held.lease_until = datetime.now(UTC) + timedelta(seconds=2)
    started = time.monotonic()
    report = await poll_once(live, "support")
    assert len(report.taken) == 1
    assert 1.5 < time.monotonic() - started < leases.LEASE_SECONDS + 5


async def test_poll_gives_up_on_a_live_holder(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = await with_mailbox(live, emulator, dovecot)
    monkeypatch.setattr(leases, "LEASE_SECONDS", 0.5)
    async with leases.holding(live, row.id, "serve-on-another-host"):
        with pytest.raises(OperationFailed, match="Another mailgate process"):
            await poll_once(live, "support")
    assert await receipts_of(live, row.id) == []
