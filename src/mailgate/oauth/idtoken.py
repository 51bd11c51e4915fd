"""Which account signed in: the OpenID Connect id_token, verified (OIDC Core §3.1.3.7).

Checked: the signature against the provider's published JWKS (fetched again once when the key
id is unknown, for key rotation), `iss`, `aud`, `nonce`, `exp`, `iat`/`nbf` with a small leeway.
Microsoft's multi-tenant endpoints (common, organizations, consumers) issue tokens whose issuer
names the account's own tenant, so there the expected issuer is built from the `tid` claim.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mailgate.errors import MailgateError
from mailgate.http import HttpFactory
from mailgate.providers import MICROSOFT_TENANT_ALIASES, describe_http_error

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY = timedelta(minutes=5)
# Personal Microsoft accounts live in this tenant (learn.microsoft.com, id token claims: tid).
MICROSOFT_CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


class IdTokenInvalid(MailgateError):
    """The id_token failed verification: the sign-in is refused."""


class JwksCache:
    """Key sets by URL, refetched when a token names a key the cached set lacks."""

    def __init__(self) -> None:
        self._sets: dict[str, KeySet] = {}

    async def get(self, url: str, http: HttpFactory, *, refresh: bool = False) -> KeySet:
        if refresh or url not in self._sets:
            try:
                async with http() as client:
                    response = await client.get(url)
                response.raise_for_status()
                self._sets[url] = KeySet.import_key_set(response.json())
            except (httpx2.HTTPError, ValueError, JoseError) as exc:
                reason = (
                    describe_http_error(exc)
                    if isinstance(exc, httpx2.HTTPError)
                    else "not a key set"
                )
                raise IdTokenInvalid(
                    f"The provider's signing keys at {url} could not be read ({reason}): check the "
                    "integration's jwks_uri, then sign in again."
                ) from None
        return self._sets[url]


JWKS = JwksCache()


def expected_issuer(configured: str, provider: str, claims: Mapping[str, Any]) -> str:
    """The issuer a token must carry, resolving Microsoft's multi-tenant placeholders."""
    if "{tenantid}" in configured:
        return configured.replace("{tenantid}", str(claims.get("tid", "")))
    if provider == "microsoft":
        match = re.match(r"^(https?://.+)/([^/]+)/v2\.0$", configured)
        if match and match.group(2) in MICROSOFT_TENANT_ALIASES:
            tid = str(claims.get("tid", ""))
            if match.group(2) == "consumers":
                tid = MICROSOFT_CONSUMERS_TENANT
            elif match.group(2) == "organizations" and tid == MICROSOFT_CONSUMERS_TENANT:
                raise IdTokenInvalid(
                    "A personal Microsoft account signed in, but the integration accepts work or "
                    "school accounts only (tenant organizations): sign in with a work account, or "
                    "set --tenant common."
                )
            return f"{match.group(1)}/{tid}/v2.0"
    return configured


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        head = token.split(".")[0]
        decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, IndexError):
        raise IdTokenInvalid("The id_token is not a JWT: the sign-in is refused.") from None
    if not isinstance(decoded, dict):
        raise IdTokenInvalid("The id_token is not a JWT: the sign-in is refused.")
    return decoded


async def verify_id_token(
    token: str,
    *,
    jwks_uri: str,
    issuer: str,
    provider: str,
    client_id: str,
    nonce: str | None,
    now: datetime,
    http: HttpFactory,
    cache: JwksCache = JWKS,
) -> dict[str, Any]:
    """The verified claims of `token`, or IdTokenInvalid saying what failed."""
    kid = _unverified_header(token).get("kid")
    keys = await cache.get(jwks_uri, http)
    if kid is not None and all(k.kid != kid for k in keys.keys):
        keys = await cache.get(jwks_uri, http, refresh=True)
    try:
        claims = dict(jwt.decode(token, keys, algorithms=ALGORITHMS).claims)
    except JoseError as exc:
        raise IdTokenInvalid(
            f"The id_token's signature does not verify with the provider's keys ({exc.error}): "
            "the sign-in is refused; check the integration's issuer and jwks_uri."
        ) from None

    want_issuer = expected_issuer(issuer, provider, claims)
    accepted = {want_issuer}
    if provider == "google" and want_issuer.startswith("https://"):
        # Google documents iss as https://accounts.google.com or accounts.google.com.
        accepted.add(want_issuer.removeprefix("https://"))
    if claims.get("iss") not in accepted:
        raise IdTokenInvalid(
            f"The id_token was issued by {claims.get('iss')!r}, not {want_issuer!r}: the sign-in "
            "is refused; check the integration's tenant or discovery URL."
        )
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise IdTokenInvalid(
            "The id_token is meant for another application (aud does not include this client "
            "ID): the sign-in is refused."
        )
    if nonce is not None and claims.get("nonce") != nonce:
        raise IdTokenInvalid(
            "The id_token's nonce does not match the sign-in request (a replayed or injected "
            "response): the sign-in is refused; start it again."
        )
    timestamp = now.timestamp()
    leeway = LEEWAY.total_seconds()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp < timestamp - leeway:
        raise IdTokenInvalid(
            "The id_token has expired: the sign-in is refused; check this host's clock and sign in "
            "again."
        )
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if isinstance(value, int | float) and value > timestamp + leeway:
            raise IdTokenInvalid(
                f"The id_token's {name} lies in the future: check this host's clock and sign in "
                "again."
            )
    return claims


def account_from_claims(claims: Mapping[str, Any]) -> str | None:
    """The signed-in address, lower-cased: Microsoft's preferred_username is the UPN, the login
    the mail servers expect; email otherwise (Google, most OIDC servers)."""
    for name in ("preferred_username", "email", "upn"):
        value = claims.get(name)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    return None
