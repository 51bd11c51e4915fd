"""A whole worker (the supervisor: mailbox loops under leases, the outbox, the token upkeep)
on PostgreSQL restarted in the middle of a batch: every message once, and the worker goes on by
itself. Long — the mailbox may wait for its lease to run out before the worker takes it again —
so `make soak` runs it (MAILGATE_SOAK=1); test_postgres_faults.py has the mailbox loop's own."""

from __future__ import annotations

import asyncio
import os

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.faults import (
    each_message_once,
    wait_for_receipts,
    wait_for_status,
    wait_until,
    when_issue_is_written,
)
from tests.support.mail import ALICE, message, with_mailbox
from tests.support.postgres import Postgres

from mailgate.context import Context
from mailgate.runtime import workers
from mailgate.runtime.supervisor import Supervisor

pytestmark = [
    pytest.mark.stores("postgresql"),
    pytest.mark.skipif(os.environ.get("MAILGATE_SOAK") != "1", reason="long: make soak runs it"),
]

MESSAGES = 20  # from one sender: under its flood limit (30 an hour)


async def test_a_worker_rides_out_a_postgresql_restart(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot, postgres_server: Postgres
) -> None:
    subjects = [f"request {i}" for i in range(MESSAGES)]
    for subject in subjects:
        dovecot.deliver(ALICE, message(subject))
    row = await with_mailbox(live, emulator, dovecot, backlog="all", poll_seconds=3600)
    supervisor = Supervisor(live, pace=workers.Pace(scan=0.2, grace=5.0))
    with when_issue_is_written(MESSAGES // 3, lambda: postgres_server.restart("immediate")) as hit:
        running = asyncio.create_task(supervisor.run())
        try:
            await wait_until(hit.is_set, "the batch met the restart")
            await wait_for_receipts(live, row.id, MESSAGES, seconds=120)
            await wait_for_status(live, row.id, "idle")
            await asyncio.to_thread(dovecot.deliver, ALICE, message("after the restart"))
            await wait_for_receipts(live, row.id, MESSAGES + 1)
        finally:
            supervisor.stop()
            await asyncio.wait_for(running, 30)
    await each_message_once(live, row.id, [*subjects, "after the restart"])
