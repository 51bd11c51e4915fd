"""A mail server refusing the access token while the token endpoint fails: every reconnect of a
mailbox signs in again, and each refusal may ask for a refresh; the credential's backoff still
decides when the endpoint is asked (Microsoft throttles a client that keeps asking). The token
endpoint is the emulator's over real HTTP; the mail server a stand-in that refuses the tokens
it is told to; time injected."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.keeper import Timeline, microsoft_credential, reload

from mailgate.context import Context
from mailgate.errors import Transient
from mailgate.mail.errors import TokenRefused
from mailgate.oauth.access import authenticate_with_refresh
from mailgate.oauth.tokens import AccessToken, TokenKeeper

pytestmark = pytest.mark.stores("sqlite", "postgresql")

RECONNECTS = 10


@pytest.fixture
def timeline(clock: FakeClock, emulator: RunningEmulator) -> Timeline:
    return Timeline(clock, emulator)


def token_requests(emulator: RunningEmulator) -> int:
    """Requests to the token endpoint, those the fault answered included."""
    return emulator.state.count_requests(endpoint="token")


class MailServer:
    """Refuses the tokens in `refused` the way a fresh token may cure; accepts the others."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)
        self.signed_in: list[str] = []

    async def __call__(self, token: AccessToken) -> str:
        if token.value in self.refused:
            raise TokenRefused("NO [AUTHENTICATIONFAILED] AUTHENTICATE failed.")
        self.signed_in.append(token.value)
        return token.value


async def refusing_its_token(
    ctx: Context, emulator: RunningEmulator
) -> tuple[int, str, MailServer]:
    """A credential, the access token it was authorized with, and a mail server that no longer
    takes that token (revoked, or expired at the provider before its time)."""
    setup = await microsoft_credential(ctx, emulator)
    assert setup.grant.access_token is not None
    return setup.credential.id, setup.grant.access_token, MailServer(setup.grant.access_token)


async def past_the_backoff(ctx: Context, timeline: Timeline, credential_id: int) -> None:
    stored = await reload(ctx, credential_id)
    assert stored.next_attempt_at is not None
    timeline.advance(seconds=(stored.next_attempt_at - ctx.clock()).total_seconds() + 1)


async def test_reconnects_within_the_backoff_send_one_refresh(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    credential_id, old, server = await refusing_its_token(ctx, emulator)
    emulator.state.inject_fault(status=503, count=None)  # and the token endpoint is down
    keeper = TokenKeeper(ctx)
    for _ in range(RECONNECTS):
        with pytest.raises(Transient, match="unavailable"):
            await authenticate_with_refresh(keeper, credential_id, server)
        timeline.advance(seconds=1)
    assert token_requests(emulator) == 1
    # What the mailbox then says: the endpoint's trouble, and when the next try is.
    stored = await reload(ctx, credential_id)
    assert stored.status == "refresh-failing" and stored.next_attempt_at is not None
    with pytest.raises(Transient) as raised:
        await authenticate_with_refresh(keeper, credential_id, server)
    assert "is unavailable (HTTP 503)" in str(raised.value)
    assert f"retrying at {stored.next_attempt_at:%H:%M:%S} UTC" in str(raised.value)
    assert "authoriz" not in str(raised.value).lower()  # nothing for the admin to do
    assert token_requests(emulator) == 1

    # The backoff over: one more request, however many reconnects follow it.
    await past_the_backoff(ctx, timeline, credential_id)
    for _ in range(RECONNECTS):
        with pytest.raises(Transient, match="unavailable"):
            await authenticate_with_refresh(keeper, credential_id, server)
    assert token_requests(emulator) == 2
    assert (await reload(ctx, credential_id)).failure_count == 2

    # The endpoint well again and the backoff over: one refresh, the new token signs in.
    emulator.state.clear_faults()
    await past_the_backoff(ctx, timeline, credential_id)
    for _ in range(RECONNECTS):
        assert await authenticate_with_refresh(keeper, credential_id, server) != old
    assert token_requests(emulator) == 3
    stored = await reload(ctx, credential_id)
    assert (stored.status, stored.failure_count) == ("active", 0)


async def test_a_token_refreshed_minutes_ago_elsewhere_is_used_not_refreshed_again(
    ctx: Context, emulator: RunningEmulator, timeline: Timeline
) -> None:
    credential_id, old, server = await refusing_its_token(ctx, emulator)
    here, elsewhere = TokenKeeper(ctx), TokenKeeper(ctx)  # two processes
    assert (await here.access_token(credential_id)).value == old
    # Another process meets the refusal first and refreshes.
    newer = await authenticate_with_refresh(elsewhere, credential_id, server)
    assert token_requests(emulator) == 1
    timeline.advance(minutes=5)
    # Mailboxes of this process still hold the old token: each is refused once, and each
    # signs in with the newer token without a request.
    signed_in = await asyncio.gather(
        *(authenticate_with_refresh(here, credential_id, server) for _ in range(RECONNECTS))
    )
    assert signed_in == [newer] * RECONNECTS
    assert token_requests(emulator) == 1


async def test_concurrent_refusals_of_one_token_send_one_refresh(
    ctx: Context, emulator: RunningEmulator
) -> None:
    credential_id, old, server = await refusing_its_token(ctx, emulator)
    emulator.state.inject_fault(status=None, delay=0.2, count=1)  # widen the window
    keepers = [TokenKeeper(ctx), TokenKeeper(ctx)]
    signed_in = await asyncio.gather(
        *(
            authenticate_with_refresh(keepers[i % 2], credential_id, server)
            for i in range(RECONNECTS)
        )
    )
    assert len(set(signed_in)) == 1 and signed_in[0] != old
    assert token_requests(emulator) == 1


async def test_a_refreshed_token_refused_too_is_refreshed_once_then_the_refusal_stands(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    keeper = TokenKeeper(ctx)

    async def refuses_all(token: AccessToken) -> str:
        raise TokenRefused("NO [AUTHENTICATIONFAILED] AUTHENTICATE failed.")

    with pytest.raises(TokenRefused):
        await authenticate_with_refresh(keeper, setup.credential.id, refuses_all)
    assert token_requests(emulator) == 1
