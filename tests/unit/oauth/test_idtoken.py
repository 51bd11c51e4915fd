"""id_token verification: signature, issuer (incl. Microsoft's multi-tenant), audience, nonce,
expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from mailgate.oauth.idtoken import (
    IdTokenInvalid,
    JwksCache,
    account_from_claims,
    expected_issuer,
    verify_id_token,
)

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})
ISSUER = "https://idp.example"
JWKS_URI = "https://idp.example/jwks"


def http_factory(keys: KeySet, fetches: list[str]) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        fetches.append(str(request.url))
        return httpx2.Response(200, json=keys.as_dict(private=False))

    return lambda: httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


def token(key: RSAKey = KEY, **overrides: Any) -> str:
    claims = {
        "iss": ISSUER,
        "aud": "client-1",
        "nonce": "n-1",
        "sub": "s",
        "email": "Alice@Example.com",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    claims.update(overrides)
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


async def verify(
    value: str,
    *,
    keys: KeySet | None = None,
    nonce: str | None = "n-1",
    issuer: str = ISSUER,
    provider: str = "generic",
) -> dict[str, Any]:
    fetches: list[str] = []
    return await verify_id_token(
        value,
        jwks_uri=JWKS_URI,
        issuer=issuer,
        provider=provider,
        client_id="client-1",
        nonce=nonce,
        now=NOW,
        http=http_factory(keys or KeySet([KEY]), fetches),
        cache=JwksCache(),
    )


async def test_a_good_token_names_the_account() -> None:
    claims = await verify(token())
    assert account_from_claims(claims) == "alice@example.com"


async def test_bad_signature_is_refused() -> None:
    with pytest.raises(IdTokenInvalid, match="signature"):
        await verify(token(key=OTHER))


async def test_wrong_audience_is_refused() -> None:
    with pytest.raises(IdTokenInvalid, match="another application"):
        await verify(token(aud="someone-else"))


async def test_wrong_nonce_is_refused() -> None:
    with pytest.raises(IdTokenInvalid, match="nonce"):
        await verify(token(nonce="n-2"))


async def test_expired_token_is_refused() -> None:
    with pytest.raises(IdTokenInvalid, match="expired"):
        await verify(token(exp=int((NOW - timedelta(hours=1)).timestamp())))


async def test_wrong_issuer_is_refused() -> None:
    with pytest.raises(IdTokenInvalid, match="issued by"):
        await verify(token(iss="https://evil.example"))


async def test_key_rotation_refetches_the_key_set_once() -> None:
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    fetches: list[str] = []
    cache = JwksCache()
    keys = KeySet([KEY])
    factory = http_factory(keys, fetches)
    await verify_id_token(
        token(),
        jwks_uri=JWKS_URI,
        issuer=ISSUER,
        provider="generic",
        client_id="client-1",
        nonce="n-1",
        now=NOW,
        http=factory,
        cache=cache,
    )
    keys.keys.append(rotated)
    await verify_id_token(
        token(key=rotated),
        jwks_uri=JWKS_URI,
        issuer=ISSUER,
        provider="generic",
        client_id="client-1",
        nonce="n-1",
        now=NOW,
        http=factory,
        cache=cache,
    )
    assert len(fetches) == 2


def test_microsoft_multi_tenant_issuers() -> None:
    tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    host = "https://login.microsoftonline.com"
    assert expected_issuer(f"{host}/common/v2.0", "microsoft", {"tid": tid}) == f"{host}/{tid}/v2.0"
    assert expected_issuer(f"{host}/{{tenantid}}/v2.0", "microsoft", {"tid": tid}) == (
        f"{host}/{tid}/v2.0"
    )
    assert expected_issuer(f"{host}/{tid}/v2.0", "microsoft", {"tid": "other"}) == (
        f"{host}/{tid}/v2.0"
    )
    mounted = "https://localhost:8443/demo-idp"
    assert expected_issuer(f"{mounted}/common/v2.0", "microsoft", {"tid": tid}) == (
        f"{mounted}/{tid}/v2.0"
    )
    with pytest.raises(IdTokenInvalid, match="personal Microsoft account"):
        expected_issuer(
            f"{host}/organizations/v2.0",
            "microsoft",
            {"tid": "9188040d-6c67-4c5b-b112-36a304b66dad"},
        )


def test_microsoft_login_is_the_upn() -> None:
    assert (
        account_from_claims(
            {"preferred_username": "Alice@Contoso.com", "email": "alias@contoso.com"}
        )
        == "alice@contoso.com"
    )
