"""The supervisor keeps tokens alive on its own, with injected time."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
import structlog
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential, reload

from mailgate.context import Context
from mailgate.oauth.integrations import IntegrationOptions, set_integration
from mailgate.runtime.supervisor import Supervisor


async def test_supervisor_refreshes_idle_credentials_and_warns_of_secret_expiry(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    await set_integration(
        ctx,
        "m365",
        IntegrationOptions(client_secret_expires=ctx.clock().date() + timedelta(days=20)),
    )

    # Time moves at least six hours whenever any loop waits: 100 days pass in at most 400
    # waits, whichever loops take them and however the machine schedules them (moving each
    # loop's own short interval took thousands of database passes). The emulator's clock
    # follows mailgate's.
    async def hours(seconds: float) -> None:
        step = max(seconds, 6 * 3600)
        ctx.clock.advance(step)  # type: ignore[attr-defined]
        emulator.state.advance(step)
        await asyncio.sleep(0)

    ctx.sleep = hours
    supervisor = Supervisor(ctx, upkeep_interval=3600, integration_check_interval=24 * 3600)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(supervisor.run())
        start = ctx.clock()
        while ctx.clock() - start < timedelta(days=100):
            await asyncio.sleep(0)
        supervisor.stop()
        await asyncio.wait_for(task, 10)
    cred = await reload(ctx, setup.credential.id)
    assert cred.status == "active"
    assert cred.last_refresh_at is not None and ctx.clock() - cred.last_refresh_at <= timedelta(
        days=8
    )
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
