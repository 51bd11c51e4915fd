"""PostgreSQL failing under a running mailbox loop (the suite's real server, tests/support/
postgres.py): restarted in the middle of a batch, down for a while, made read-only. Each time
nothing is lost or taken twice — a batch's receipts and issues are one transaction, rolled back
whole and taken again — the log, /readyz and the metrics say what is wrong while it lasts, and the
loop goes on by itself once the server is back."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.faults import (
    each_message_once,
    logged,
    loop_running,
    status_of,
    wait_for_receipts,
    wait_for_status,
    wait_until,
    when_issue_is_written,
)
from tests.support.mail import ALICE, message, with_mailbox
from tests.support.postgres import Postgres

from mailgate.context import Context
from mailgate.runtime.state_metrics import state_text

pytestmark = pytest.mark.stores("postgresql")

MESSAGES = 20  # from one sender: under its flood limit (30 an hour)
OUTAGE_SECONDS = 2.0
DATABASE_DOWN = (
    b"# HELP mailgate_database_up Whether the database answered this scrape (1) or not (0).\n"
    b"# TYPE mailgate_database_up gauge\nmailgate_database_up 0\n"
)


@pytest.mark.parametrize("outage", ["restart", "down for a while"])
async def test_postgresql_lost_in_the_middle_of_a_batch(
    live: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postgres_server: Postgres,
    outage: str,
) -> None:
    subjects = [f"request {i}" for i in range(MESSAGES)]
    for subject in subjects:
        dovecot.deliver(ALICE, message(subject))
    row = await with_mailbox(live, emulator, dovecot, backlog="all", poll_seconds=3600)

    def fault() -> None:
        if outage == "restart":
            postgres_server.restart("immediate")  # a crash and a quick restart
        else:
            postgres_server.pause("immediate")  # down until the test starts it again

    with (
        structlog.testing.capture_logs() as logs,
        when_issue_is_written(MESSAGES // 3, fault) as faulted,
    ):
        async with loop_running(live) as loop:
            await wait_until(faulted.is_set, "the batch met the fault")
            if outage != "restart":
                # While it is down, the metrics say so (and only that).
                assert await state_text(live) == DATABASE_DOWN
                await asyncio.sleep(OUTAGE_SECONDS)  # the loop retries meanwhile
                await asyncio.to_thread(postgres_server.resume)
            await wait_for_receipts(live, row.id, MESSAGES)
            # Back in IDLE without help: new mail is taken as it comes.
            await wait_for_status(live, row.id, "idle")
            await asyncio.to_thread(dovecot.deliver, ALICE, message("after the outage"))
            await wait_for_receipts(live, row.id, MESSAGES + 1)
            assert not loop.done()
    await each_message_once(live, row.id, [*subjects, "after the outage"])
    assert logged(logs, "The database server failed this work"), logs
    assert await status_of(live, row.id) == "idle"
    assert b"mailgate_database_up 1" in await state_text(live)


async def test_postgresql_read_only_for_a_while(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot, postgres_server: Postgres
) -> None:
    # As after a failover to a standby, or an admin's ALTER DATABASE: every new transaction is
    # read-only. Made writable again, the connections mailgate holds are still read-only ones
    # (a session keeps the default it began with): mailgate must drop them by itself.
    database = live.settings.database_url.rsplit("/", 1)[-1]
    row = await with_mailbox(live, emulator, dovecot, poll_seconds=3600)
    subjects = [f"while read-only {i}" for i in range(3)]
    with structlog.testing.capture_logs() as logs:
        async with loop_running(live) as loop:
            await wait_for_status(live, row.id, "idle")
            postgres_server.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'
            )
            postgres_server.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}'"
            )
            for subject in subjects:
                await asyncio.to_thread(dovecot.deliver, ALICE, message(subject))
            await wait_until(lambda: logged(logs, "it is read-only"), "the log says read-only")
            assert not await live.db.is_ready()  # /readyz answers 503
            postgres_server.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = off'
            )
            await wait_for_receipts(live, row.id, len(subjects))
            await wait_for_status(live, row.id, "idle")
            assert not loop.done()
    assert await live.db.is_ready()
    await each_message_once(live, row.id, subjects)


@pytest.fixture
def small_disk(postgres_server: Postgres) -> Iterator[tuple[str, Path]]:
    """A tablespace on a 256 KB file system of its own (a tmpfs; mounting needs root): the
    name, and the mount point to grow with `remount`."""
    if os.geteuid() != 0:
        pytest.skip("a file system small enough to fill is mounted as root only")
    folder = postgres_server.folder / "small-disk"  # where the server's user may go
    folder.mkdir(exist_ok=True)
    owner = "postgres" if postgres_server.as_root else str(os.getuid())
    mount = ["mount", "-t", "tmpfs", "-o", f"size=256k,mode=0700,uid={owner}", "tmpfs"]
    subprocess.run([*mount, str(folder)], check=True, capture_output=True)
    name = f"small_{os.getpid()}"
    try:
        postgres_server.execute(f"CREATE TABLESPACE {name} LOCATION '{folder}'")
        yield name, folder
    finally:
        postgres_server.execute(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run(["umount", "--lazy", str(folder)], check=False, capture_output=True)
        folder.rmdir()


def remount(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


async def test_postgresql_disk_full_for_a_while(
    live: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    postgres_server: Postgres,
    small_disk: tuple[str, Path],
) -> None:
    # The messages' bytes (table blobs, and its TOAST table) go to the small file system: a
    # write past its end fails as on a full disk (ENOSPC: SQLSTATE 53100), the server goes on.
    tablespace, folder = small_disk
    database = live.settings.database_url.rsplit("/", 1)[-1]
    postgres_server.execute(f"ALTER TABLE blobs SET TABLESPACE {tablespace}", database)
    row = await with_mailbox(live, emulator, dovecot, poll_seconds=3600)
    subjects = [f"while the disk is full {i}" for i in range(3)]
    try:
        with structlog.testing.capture_logs() as logs:
            async with loop_running(live) as loop:
                await wait_for_status(live, row.id, "idle")
                for subject in subjects:  # 300 KB each that do not compress: past 256 KB
                    raw = message(subject) + base64.encodebytes(os.urandom(225_000))
                    await asyncio.to_thread(dovecot.deliver, ALICE, raw)
                await wait_until(lambda: logged(logs, "disk is full"), "the log says it")
                await wait_for_status(live, row.id, "failing")  # written: its table has room
                remount(folder, "16m")  # space freed
                await wait_for_receipts(live, row.id, len(subjects))
                await wait_for_status(live, row.id, "idle")
                assert not loop.done()
        await each_message_once(live, row.id, subjects)
    finally:
        await live.db.dispose()  # nobody holds the table while it moves back
        postgres_server.execute("ALTER TABLE blobs SET TABLESPACE pg_default", database)
