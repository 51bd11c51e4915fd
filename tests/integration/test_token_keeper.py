"""The token keeper against the provider emulator over real HTTP, with time injected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.keeper import (
    CLIENT_ID,
    Timeline,
    google_credential,
    microsoft_credential,
    reload,
    reload_integration,
)

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.errors import ClientRejected, NeedsReauthorization, Transient
from mailgate.oauth.integrations import IntegrationOptions, set_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import Credential

pytestmark = pytest.mark.stores("sqlite", "postgresql")


@pytest.fixture
def timeline(clock: FakeClock, emulator: RunningEmulator) -> Timeline:
    return Timeline(clock, emulator)


def refreshes(emulator: RunningEmulator, **criteria: object) -> int:
    return emulator.state.count_requests(endpoint="token", grant_type="refresh_token", **criteria)


async def test_fresh_token_is_served_without_a_request(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    token = await TokenKeeper(ctx).access_token(setup.credential.id)
    assert token.value == setup.grant.access_token
    assert refreshes(emulator) == 0


async def test_refresh_happens_a_margin_before_expiry(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    keeper = TokenKeeper(ctx)
    lifetime = setup.grant.expires_in or 3600
    timeline.advance(seconds=lifetime - 6 * 60)
    await keeper.access_token(setup.credential.id)
    assert refreshes(emulator) == 0
    timeline.advance(seconds=2 * 60)
    token = await keeper.access_token(setup.credential.id)
    assert refreshes(emulator) == 1
    assert token.value != setup.grant.access_token
    assert token.expires_at > ctx.clock() + timedelta(minutes=50)


async def test_rotated_refresh_token_is_stored_and_scope_always_sent(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    keeper = TokenKeeper(ctx)
    for _ in range(3):
        timeline.advance(hours=1)
        await keeper.access_token(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert stored.refresh_token_enc is not None
    current = ctx.secrets.decrypt(stored.refresh_token_enc)
    assert current != setup.grant.refresh_token
    # The stored token is the one the provider issued last: the chain is intact.
    records = emulator.state.requests(endpoint="token", grant_type="refresh_token")
    assert [r.status for r in records] == [200, 200, 200]
    assert len({r.refresh_token_id for r in records}) == 3
    assert all("IMAP.AccessAsUser.All" in (r.scope or "") for r in records)


async def test_revoked_grant_needs_reauthorization_and_keeps_the_refresh_token(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    emulator.state.revoke_account("microsoft", setup.credential.account)
    timeline.advance(hours=1)
    keeper = TokenKeeper(ctx)
    with pytest.raises(NeedsReauthorization, match="AADSTS50173"):
        await keeper.access_token(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert stored.status == "needs-reauthorization"
    assert "authorize the account again" in (stored.last_error or "")
    assert stored.refresh_token_enc is not None
    assert ctx.secrets.decrypt(stored.refresh_token_enc) == setup.grant.refresh_token
    # Asking again does not hammer the provider.
    with pytest.raises(NeedsReauthorization):
        await keeper.access_token(setup.credential.id)
    assert refreshes(emulator) == 1


async def test_expired_client_secret_flags_the_integration_until_a_new_secret(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    emulator.state.update_client(
        "microsoft", CLIENT_ID, secret_expires_at=emulator.state.now() + 60
    )
    timeline.advance(hours=1)
    keeper = TokenKeeper(ctx)
    with pytest.raises(ClientRejected, match="AADSTS7000222"):
        await keeper.access_token(setup.credential.id)
    integration = await reload_integration(ctx, setup.integration.id)
    assert integration.client_error and "new secret" in integration.client_error
    assert (await reload(ctx, setup.credential.id)).status == "refresh-failing"

    emulator.state.update_client(
        "microsoft", CLIENT_ID, client_secret="a-new-secret", secret_expires_at=None
    )
    await set_integration(ctx, "m365", IntegrationOptions(client_secret="a-new-secret"))
    assert (await reload_integration(ctx, setup.integration.id)).client_error is None
    # The new secret lifts the backoff: the next request refreshes at once.
    token = await keeper.access_token(setup.credential.id)
    assert token.account == setup.credential.account
    assert (await reload(ctx, setup.credential.id)).status == "active"


async def test_5xx_burst_backs_off_then_recovers(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    keeper = TokenKeeper(ctx)
    emulator.state.inject_fault(status=503, count=3)
    timeline.advance(hours=1)
    delays = []
    for attempt in range(1, 4):
        if attempt == 1:
            with pytest.raises(Transient, match="503"):
                await keeper.access_token(setup.credential.id)
        else:
            assert (await keeper.upkeep()).failed == [setup.credential.id]
        stored = await reload(ctx, setup.credential.id)
        assert stored.status == "refresh-failing" and stored.failure_count == attempt
        assert stored.next_attempt_at is not None
        delays.append(stored.next_attempt_at - ctx.clock())
        # Within the backoff nothing is sent, however often a mailbox asks.
        before = refreshes(emulator) + emulator.state.count_requests(fault=True)
        with pytest.raises(Transient, match="next try"):
            await keeper.access_token(setup.credential.id)
        report = await keeper.upkeep()
        assert report.refreshed == report.failed == []
        assert refreshes(emulator) + emulator.state.count_requests(fault=True) == before
        timeline.advance(seconds=delays[-1].total_seconds() + 1)
    assert delays[0] < delays[1] < delays[2]
    report = await keeper.upkeep()
    assert report.refreshed == [setup.credential.id]
    stored = await reload(ctx, setup.credential.id)
    assert (stored.status, stored.failure_count, stored.last_error) == ("active", 0, None)


async def test_slow_endpoint_times_out_and_is_retried(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    keeper = TokenKeeper(ctx, request_timeout=0.2)
    emulator.state.inject_fault(status=None, delay=1.0, count=1)
    timeline.advance(hours=1)
    with pytest.raises(Transient, match="timed out"):
        await keeper.access_token(setup.credential.id)
    assert (await reload(ctx, setup.credential.id)).status == "refresh-failing"
    timeline.advance(minutes=2)
    await keeper.upkeep()
    assert (await reload(ctx, setup.credential.id)).status == "active"


async def test_idle_credential_is_kept_alive_past_90_days(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    kept = await microsoft_credential(ctx, emulator)
    keeper = TokenKeeper(ctx)
    for _ in range(100):  # a day at a time, the supervisor's upkeep running
        timeline.advance(days=1)
        await keeper.upkeep()
    assert (await reload(ctx, kept.credential.id)).status == "active"
    assert 100 / 8 <= refreshes(emulator) <= 100 / 6  # weekly, not hourly
    timeline.advance(hours=1)
    assert (await keeper.access_token(kept.credential.id)).account == kept.credential.account


async def test_without_upkeep_microsoft_expires_the_refresh_token_at_90_days(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    timeline.advance(days=91)
    with pytest.raises(NeedsReauthorization, match="AADSTS700082"):
        await TokenKeeper(ctx).access_token(setup.credential.id)


async def test_crash_between_token_response_and_commit_loses_nothing(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)

    async def crash(_row: object) -> None:
        raise RuntimeError("power cut")

    timeline.advance(hours=1)
    with pytest.raises(RuntimeError, match="power cut"):
        await TokenKeeper(ctx, before_commit=crash).access_token(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert stored.refresh_token_enc is not None
    assert ctx.secrets.decrypt(stored.refresh_token_enc) == setup.grant.refresh_token
    # The provider rotated, the new token was lost; the old one still works at Microsoft.
    timeline.advance(minutes=2)  # later: the keeper that failed gave its lease back
    token = await TokenKeeper(ctx).access_token(setup.credential.id)
    assert token.account == setup.credential.account
    assert [
        r.status for r in emulator.state.requests(endpoint="token", grant_type="refresh_token")
    ] == [200, 200]
    assert (await reload(ctx, setup.credential.id)).status == "active"


async def test_fifty_coroutines_one_refresh(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    emulator.state.inject_fault(status=None, delay=0.2, count=1)  # widen the window
    timeline.advance(hours=1)
    keepers = [TokenKeeper(ctx), TokenKeeper(ctx)]  # two keepers: the lease row, too
    tokens = await asyncio.gather(
        *(keepers[i % 2].access_token(setup.credential.id) for i in range(50))
    )
    assert refreshes(emulator) == 1
    assert len({t.value for t in tokens}) == 1


async def test_google_refresh_does_not_rotate(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await google_credential(ctx, emulator)
    timeline.advance(hours=1)
    await TokenKeeper(ctx).access_token(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert stored.refresh_token_enc is not None
    assert ctx.secrets.decrypt(stored.refresh_token_enc) == setup.grant.refresh_token
    assert refreshes(emulator, provider="google") == 1


async def test_google_testing_app_expiry_at_day_seven_is_explained(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await google_credential(ctx, emulator, testing=True)
    timeline.advance(days=7, hours=1)
    with pytest.raises(NeedsReauthorization, match="Token has been expired or revoked"):
        await TokenKeeper(ctx).access_token(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert "Testing status" in (stored.last_error or "")


async def test_credential_without_refresh_token_turns_needs_reauthorization(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    async with ctx.db.session() as session:
        row = await session.get(type(setup.credential), setup.credential.id)
        assert row is not None
        row.refresh_token_enc = None
        await session.commit()
    timeline.advance(hours=1)
    with pytest.raises(NeedsReauthorization, match="no refresh token"):
        await TokenKeeper(ctx).access_token(setup.credential.id)
    stored = await reload(ctx, setup.credential.id)
    assert stored.status == "needs-reauthorization"
    assert "offline_access" in (stored.last_error or "")
    assert refreshes(emulator) == 0


async def test_two_workers_upkeep_refreshes_an_idle_credential_once(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    timeline.advance(days=8)
    emulator.state.inject_fault(status=None, delay=0.2, count=1)
    first, second = TokenKeeper(ctx), TokenKeeper(ctx)
    reports = await asyncio.gather(first.upkeep(), second.upkeep())
    assert refreshes(emulator) == 1
    assert sorted(r.refreshed for r in reports) == [[setup.credential.id]] * 2


def host_clock(minutes: float) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


@pytest.mark.stores("postgresql")
async def test_keepers_whose_clocks_differ_by_minutes_refresh_a_token_once(
    ctx: Context, settings: Settings, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    async with ctx.db.session() as session, session.begin():
        row = await session.get(Credential, setup.credential.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(minutes=10)  # expired on both hosts
    # Two hosts, one five minutes behind: by its clock the lease it takes runs out four
    # minutes before the other host's now. On the database's clock it runs a minute.
    behind = Context.open(settings, clock=host_clock(-5))
    ahead = Context.open(settings, clock=host_clock(0))
    try:
        emulator.state.inject_fault(status=None, delay=1.0, count=1)  # the refresh in flight
        first = asyncio.create_task(TokenKeeper(behind).access_token(setup.credential.id))
        deadline = asyncio.get_running_loop().time() + 20
        while await lease_owner(ctx, setup.credential.id) is None:
            assert asyncio.get_running_loop().time() < deadline, "no lease taken"
            await asyncio.sleep(0.01)
        second = await TokenKeeper(ahead).access_token(setup.credential.id)
        assert (await first).value == second.value
    finally:
        await behind.close()
        await ahead.close()
    assert refreshes(emulator) == 1


async def lease_owner(ctx: Context, credential_id: int) -> str | None:
    async with ctx.db.session() as session:
        row = await session.get(Credential, credential_id, populate_existing=True)
        assert row is not None
        return row.lease_owner
