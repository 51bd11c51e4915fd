"""ID tokens: who signed in, signed RS256 with a key published at the JWKS endpoints.

Both providers return an `id_token` when `openid` was granted, which is how a client learns the
mailbox address (Microsoft `preferred_username`, Google `email`). The key is generated on first use
so an emulator that never issues ID tokens pays nothing for it.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from mailgate_emulator.model import Account, Provider

_ID_TOKEN_LIFETIME = 3600


class SigningKeys:
    """The emulator's token-signing key, created lazily and kept across resets."""

    def __init__(self) -> None:
        self._key: RSAKey | None = None
        self._lock = threading.Lock()

    def _current(self) -> RSAKey:
        with self._lock:
            if self._key is None:
                kid = secrets.token_hex(8)
                self._key = RSAKey.generate_key(
                    2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True
                )
            return self._key

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517 §5)."""
        return {"keys": [self._current().as_dict(private=False)]}

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of `claims`."""
        key = self._current()
        header = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
        return jwt.encode(header, claims, key)


def id_token_claims(
    provider: Provider,
    *,
    issuer: str,
    client_id: str,
    account: Account,
    scopes: tuple[str, ...],
    now: float,
    nonce: str | None = None,
) -> dict[str, Any]:
    """The claims the provider would put in an ID token for `account`."""
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "sub": account.subject,
        "iat": issued,
        "exp": issued + _ID_TOKEN_LIFETIME,
    }
    if nonce is not None:
        # OpenID Connect Core §2: "The value is passed through unmodified from the
        # Authentication Request to the ID Token."
        claims["nonce"] = nonce
    if provider == "microsoft":
        # Microsoft v2.0 ID token: `oid` and `tid` identify the user and directory,
        # `preferred_username` is the sign-in name (the mailbox's UPN).
        claims.update(
            ver="2.0",
            nbf=issued,
            oid=account.subject,
            tid=account.tenant_id,
            preferred_username=account.address,
            name=account.name,
        )
        if "email" in scopes:
            claims["email"] = account.address
    else:
        claims.update(azp=client_id, email=account.address, email_verified=True)
        if "profile" in scopes:
            claims["name"] = account.name
    return claims
