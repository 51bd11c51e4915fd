"""Refresh once, retry once: a refused token is replaced and tried once more, never more; a
temporary failure or the keeper's own error is not answered with a refresh."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgate.errors import NeedsReauthorization
from mailgate.mail.errors import MailError, TokenRefused
from mailgate.oauth.access import authenticate_with_refresh
from mailgate.oauth.tokens import AccessToken

EXPIRES = datetime(2026, 11, 28, 13, tzinfo=UTC)


class FakeKeeper:
    """Hands out "old", and "new" once refreshed; counts what it was asked."""

    def __init__(self, refresh_fails: bool = False) -> None:
        self.current = "old"
        self.refreshes = 0
        self.replaced: list[str] = []
        self.refresh_fails = refresh_fails

    def _token(self, credential_id: int) -> AccessToken:
        return AccessToken(credential_id, "alice@example.test", EXPIRES, self.current)

    async def access_token(self, credential_id: int) -> AccessToken:
        return self._token(credential_id)

    async def replace_refused(self, refused: AccessToken) -> AccessToken:
        self.refreshes += 1
        self.replaced.append(refused.value)
        if self.refresh_fails:
            raise NeedsReauthorization("The grant was revoked: sign the account in again.")
        self.current = "new"
        return self._token(refused.credential_id)


class Server:
    """Accepts only the tokens in `accepted`; refuses the others with `refusal`."""

    def __init__(self, accepted: set[str], refusal: Exception | None = None) -> None:
        self.accepted = accepted
        self.refusal = refusal or TokenRefused("NO [AUTHENTICATIONFAILED] Invalid credentials")
        self.tried: list[str] = []

    async def __call__(self, token: AccessToken) -> str:
        self.tried.append(token.value)
        if token.value not in self.accepted:
            raise self.refusal
        return f"signed in with {token.value}"


async def test_an_accepted_token_is_not_refreshed() -> None:
    keeper, server = FakeKeeper(), Server({"old"})
    assert await authenticate_with_refresh(keeper, 7, server) == "signed in with old"  # type: ignore[arg-type]
    assert keeper.refreshes == 0 and server.tried == ["old"]


async def test_a_refused_token_is_refreshed_once_and_tried_once_more() -> None:
    keeper, server = FakeKeeper(), Server({"new"})
    assert await authenticate_with_refresh(keeper, 7, server) == "signed in with new"  # type: ignore[arg-type]
    assert keeper.refreshes == 1 and keeper.replaced == ["old"]
    assert server.tried == ["old", "new"]


async def test_a_second_refusal_propagates() -> None:
    keeper, server = FakeKeeper(), Server(set())
    with pytest.raises(TokenRefused):
        await authenticate_with_refresh(keeper, 7, server)  # type: ignore[arg-type]
    assert keeper.refreshes == 1 and server.tried == ["old", "new"]


async def test_a_temporary_failure_is_not_answered_with_a_refresh() -> None:
    refusal = MailError("NO [UNAVAILABLE] Temporary authentication failure.")
    assert refusal.temporary
    keeper, server = FakeKeeper(), Server(set(), refusal)
    with pytest.raises(MailError) as raised:
        await authenticate_with_refresh(keeper, 7, server)  # type: ignore[arg-type]
    assert raised.value is refusal
    assert keeper.refreshes == 0 and server.tried == ["old"]


async def test_a_refresh_that_fails_says_why() -> None:
    keeper, server = FakeKeeper(refresh_fails=True), Server(set())
    with pytest.raises(NeedsReauthorization):
        await authenticate_with_refresh(keeper, 7, server)  # type: ignore[arg-type]
    assert server.tried == ["old"]
