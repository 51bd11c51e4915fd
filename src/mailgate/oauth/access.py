"""Signing in to a mail server with an access token: refresh once, retry once.

The token keeper hands out a token it considers valid; the server may still refuse it — the
provider revoked it, or it expired before the time it was given for. When the server says so the
way a fresh token may cure (the mail layer's `TokenRefused`, decided by the server's code), the
keeper replaces that token, whatever its age, and the sign-in is tried once more. A second
refusal is the admin's to fix; a temporary failure is never answered with a refresh.

The replacement is the keeper's to decide (`TokenKeeper.replace_refused`): a token newer than the
refused one is used as it is, and a credential whose refreshes have been failing is not
refreshed before its backoff ends — a loop reconnecting every few seconds must not turn each
refusal into a request to a token endpoint that is down (Microsoft throttles a client that
does that).
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
    (`TokenRefused`), once more with the keeper's replacement for it. The keeper's errors (the
    grant needs re-authorization, the provider is unreachable or its refreshes back off) and a
    second refusal propagate."""
    token = await keeper.access_token(credential_id)
    try:
        return await attempt(token)
    except TokenRefused:
        replacement = await keeper.replace_refused(token)
    return await attempt(replacement)
