"""The supervisor while its database is out of reach: every loop says so in one line per
attempt, never with a traceback. A traceback is rendered on the event loop; one per failed look
at the mailboxes (every `Pace.scan`) held up the leases' heartbeat until they ran out, and a
worker took 7-22 s instead of 2 to go on after a PostgreSQL restart
(tests/reliability/test_postgres_worker.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest
import structlog

from mailgate.context import Context
from mailgate.runtime import workers
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.db import Database

pytestmark = pytest.mark.stores("sqlite")


def _closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


async def test_a_database_out_of_reach_is_one_line_per_attempt(live: Context) -> None:
    down = Database(f"postgresql+psycopg://mailgate@127.0.0.1:{_closed_port()}/mailgate")
    reachable, live.db = live.db, down
    supervisor = Supervisor(live, outbox_interval=0.1, pace=workers.Pace(scan=0.1, grace=1.0))
    try:
        with structlog.testing.capture_logs() as logs:
            running = asyncio.create_task(supervisor.run())
            await asyncio.sleep(1.5)
            supervisor.stop()
            await asyncio.wait_for(running, 30)
    finally:
        live.db = reachable
        await down.dispose()
    failures = [entry for entry in logs if str(entry["event"]).endswith("failed")]
    events = {str(entry["event"]) for entry in failures}
    assert {"sharing the mailboxes failed", "outbox flush failed"} <= events
    assert [entry for entry in failures if "exc_info" in entry] == []
    assert all("The database server failed" in str(entry["error"]) for entry in failures)
