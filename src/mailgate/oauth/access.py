"""Signing in to a mail server with an access token: refresh once, retry once.

The token keeper hands out a token it considers valid; the server may still refuse it — the
provider revoked it, or it expired before the time it was given for. When the server says so the
way a fresh token may cure (the mail layer's `TokenRefused`, decided by the server's code), the
token is refreshed once, whatever its age, and the sign-in tried once more. A second refusal is
the admin's to fix; a temporary failure is never answered with a refresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from mailgate.mail.errors import TokenRefused
from mailgate.oauth.tokens import AccessToken, TokenKeeper

T = TypeVar("T")


async def authenticate_with_refresh(
    keeper: TokenKeeper, credential_id: int, attempt: Callable[[AccessToken], Awaitable[T]]
) -> T:
    """`attempt(token)` with the credential's access token; when the server refuses the token
    (`TokenRefused`), once more with a freshly refreshed one. The keeper's errors (the grant
    needs re-authorization, the provider is unreachable) and a second refusal propagate."""
    token = await keeper.access_token(credential_id)
    try:
        return await attempt(token)
    except TokenRefused:
        keeper.invalidate(credential_id)
        token = await keeper.refresh(credential_id)
    return await attempt(token)
