"""Two processes, one expiring token: one refresh request reaches the provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential

from mailgate.context import Context
from mailgate.store.models import Credential

pytestmark = pytest.mark.stores("sqlite", "postgresql")


async def test_two_processes_share_one_refresh(ctx: Context, emulator: RunningEmulator) -> None:
    setup = await microsoft_credential(ctx, emulator)
    async with ctx.db.session() as session:
        await session.execute(
            update(Credential)
            .where(Credential.id == setup.credential.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()
    # Hold the refresh response for a while so the second process asks while it is in flight.
    emulator.state.inject_fault(status=None, delay=0.5, count=1)
    env = {
        **os.environ,
        "MAILGATE_HOME": str(ctx.settings.home),
        "MAILGATE_DATABASE_URL": ctx.settings.database_url,
    }
    start_at = time.time() + 3.0
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.ask_token",
                str(setup.credential.id),
                "25",
                str(start_at),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert emulator.state.count_requests(endpoint="token", grant_type="refresh_token") == 1
    assert [r["count"] for r in results] == [25, 25]
    assert len({d for r in results for d in r["digests"]}) == 1


async def test_process_killed_between_token_response_and_commit_loses_nothing(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    async with ctx.db.session() as session:
        await session.execute(
            update(Credential)
            .where(Credential.id == setup.credential.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()
    env = {
        **os.environ,
        "MAILGATE_HOME": str(ctx.settings.home),
        "MAILGATE_DATABASE_URL": ctx.settings.database_url,
    }
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.ask_token",
            str(setup.credential.id),
            "1",
            "0",
            "--die-before-commit",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    # The provider rotated; the new refresh token died with the process.
    assert (
        emulator.state.count_requests(endpoint="token", grant_type="refresh_token", status=200) == 1
    )
    async with ctx.db.session() as session:
        row = await session.get(Credential, setup.credential.id)
        assert row is not None and row.refresh_token_enc is not None
        assert ctx.secrets.decrypt(row.refresh_token_enc) == setup.grant.refresh_token
        # The dead holder's lease runs out; make that now instead of waiting a minute.
        row.lease_until = datetime.now(UTC) - timedelta(seconds=1)
        await session.commit()
    survivor = subprocess.run(
        [sys.executable, "-m", "tests.support.ask_token", str(setup.credential.id), "1", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert survivor.returncode == 0, survivor.stderr
    statuses = [
        r.status for r in emulator.state.requests(endpoint="token", grant_type="refresh_token")
    ]
    assert statuses == [200, 200]
    async with ctx.db.session() as session:
        row = await session.get(Credential, setup.credential.id, populate_existing=True)
        assert row is not None and row.status == "active"
        assert row.refresh_token_enc is not None
        assert ctx.secrets.decrypt(row.refresh_token_enc) != setup.grant.refresh_token
