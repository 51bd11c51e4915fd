"""The supervisor keeps tokens alive on its own, with injected time."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import date, datetime, timedelta

import pytest
import structlog
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential, reload

from mailgate.context import Context
from mailgate.oauth.integrations import IntegrationOptions, set_integration
from mailgate.runtime.supervisor import Supervisor

pytestmark = pytest.mark.stores("sqlite", "postgresql")


async def test_supervisor_refreshes_idle_credentials_and_warns_of_secret_expiry(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    await set_integration(
        ctx,
        "m365",
        IntegrationOptions(client_secret_expires=ctx.clock().date() + timedelta(days=20)),
    )

    # Virtual time: each of the supervisor's six loops waits on a deadline, and only when all
    # six wait does time jump to the earliest one. Token upkeep runs every 12 hours of this
    # time, whatever the machine's load; the daily integration check daily; the outbox,
    # webhook, mailbox and alert loops, idle here, every five days. The emulator's clock
    # follows.
    loops = 6
    waiting: list[tuple[datetime, asyncio.Future[None]]] = []

    async def virtual_sleep(seconds: float) -> None:
        if seconds >= 24 * 3600:
            step = seconds
        elif seconds == 3600:
            step = 12 * 3600
        else:
            step = 5 * 24 * 3600
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append((ctx.clock() + timedelta(seconds=step), wake))
        await wake

    ctx.sleep = virtual_sleep
    supervisor = Supervisor(ctx, upkeep_interval=3600, integration_check_interval=24 * 3600)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(supervisor.run())
        start = ctx.clock()
        idle_since = time.monotonic()
        while ctx.clock() - start < timedelta(days=100):
            waiting[:] = [(at, wake) for at, wake in waiting if not wake.done()]
            if len(waiting) < loops:
                assert time.monotonic() - idle_since < 60, f"only {len(waiting)} loops wait"
                await asyncio.sleep(0.001)
                continue
            due = min(at for at, _ in waiting)
            step = (due - ctx.clock()).total_seconds()
            ctx.clock.advance(step)  # type: ignore[attr-defined]
            emulator.state.advance(step)
            for at, wake in waiting:
                if at <= due:
                    wake.set_result(None)
            idle_since = time.monotonic()
            await asyncio.sleep(0)
        supervisor.stop()
        await asyncio.wait_for(task, 10)
    cred = await reload(ctx, setup.credential.id)
    assert cred.status == "active"
    # Every gap between refreshes, as the provider saw them, stays within eight days.
    refreshed = [r.at for r in emulator.state.requests(grant_type="refresh_token", status=200)]
    moments = [emulator.state.now() - 100 * 86400, *refreshed, emulator.state.now()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert len(refreshed) >= 12 and max(gaps) <= 8 * 86400, [g / 86400 for g in gaps]
    warnings = [e for e in logs if e["event"] == "integration needs attention"]
    assert warnings, "the 14-day secret expiry warning was never logged"
    assert "expire" in warnings[0]["detail"]


@pytest.mark.parametrize("days", [14, 0, -1])
def test_expiry_warning_window(days: int) -> None:
    from datetime import UTC, datetime

    from mailgate.oauth.integrations import integration_warnings
    from mailgate.store.models import Integration

    now = datetime(2026, 11, 28, tzinfo=UTC)
    row = Integration(name="x", client_secret_expires=date(2026, 11, 28) + timedelta(days=days))
    assert integration_warnings(row, now)
    row.client_secret_expires = date(2026, 11, 28) + timedelta(days=15)
    assert integration_warnings(row, now) == []
