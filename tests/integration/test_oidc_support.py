"""The oidc-provider test support works against the real server (npm oidc-provider v9).

These prove the fixture and the headless drivers in tests/support/oidc.py, and the server
behaviour later tests rely on (opaque access tokens with `username` at introspection, refresh
tokens refused to the resource server, device flow).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx2
import pytest
from tests.support.oidc import (
    DEVICE_CODE_GRANT,
    OidcClient,
    OidcFlowError,
    OidcProvider,
    approve_device_code,
    authorization_url,
    complete_authorization,
    pkce_pair,
    sign_in_with_pages,
)

pytestmark = pytest.mark.servers

SCOPES = ["openid", "email", "offline_access", "mail"]


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def _sign_in(provider: OidcProvider, client: OidcClient, login: str) -> dict[str, Any]:
    return await sign_in_with_pages(
        provider,
        client_id=client.client_id,
        client_secret=client.client_secret,
        redirect_uri=provider.redirect_uri,
        login=login,
        scopes=SCOPES,
    )


async def test_discovery_document(oidc_provider: OidcProvider) -> None:
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.get(oidc_provider.discovery_url)
    assert response.status_code == 200
    doc = response.json()
    issuer = oidc_provider.issuer
    assert issuer.startswith("http://127.0.0.1:")
    assert doc["issuer"] == issuer
    assert doc["authorization_endpoint"] == f"{issuer}/auth"
    assert doc["token_endpoint"] == f"{issuer}/token"
    assert doc["introspection_endpoint"] == f"{issuer}/token/introspection"
    assert doc["revocation_endpoint"] == f"{issuer}/token/revocation"
    assert doc["device_authorization_endpoint"] == f"{issuer}/device/auth"
    assert doc["userinfo_endpoint"] == f"{issuer}/me"
    assert doc["jwks_uri"] == f"{issuer}/jwks"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT} <= set(
        doc["grant_types_supported"]
    )
    assert {"openid", "email", "profile", "offline_access", "mail"} <= set(doc["scopes_supported"])
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert "code" in doc["response_types_supported"]
    assert oidc_provider.metadata == doc


async def test_sign_in_with_pages_returns_tokens(oidc_provider: OidcProvider) -> None:
    client = oidc_provider.basic_client
    tokens = await _sign_in(oidc_provider, client, "alice@example.test")

    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    assert tokens["expires_in"] > 0
    assert tokens["scope"] == "mail"  # the resource's scopes, like Microsoft's token responses
    access_token = tokens["access_token"]
    assert access_token.count(".") == 0, "access tokens must be opaque"

    id_token = _jwt_claims(tokens["id_token"])
    assert id_token["iss"] == oidc_provider.issuer
    assert id_token["aud"] == client.client_id
    assert id_token["sub"] == "alice@example.test"
    assert id_token["email"] == "alice@example.test"
    assert id_token["nonce"]

    info = await oidc_provider.introspect(access_token)
    assert info["active"] is True
    assert info["username"] == "alice@example.test"
    assert info["sub"] == "alice@example.test"
    assert info["client_id"] == client.client_id
    assert info["aud"] == oidc_provider.resource
    assert info["token_type"] == "Bearer"


async def test_sign_in_reports_oauth_errors(oidc_provider: OidcProvider) -> None:
    with pytest.raises(OidcFlowError) as caught:
        await sign_in_with_pages(
            oidc_provider,
            client_id=oidc_provider.basic_client.client_id,
            client_secret="wrong-secret",
            redirect_uri=oidc_provider.redirect_uri,
            login="alice@example.test",
            scopes=SCOPES,
        )
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401


async def test_wrong_code_verifier_is_refused(oidc_provider: OidcProvider) -> None:
    """PKCE is enforced: the driver's verifier is what makes the exchange work."""
    client = oidc_provider.post_client
    _, challenge = pkce_pair()
    url = authorization_url(
        oidc_provider,
        client_id=client.client_id,
        redirect_uri=oidc_provider.redirect_uri,
        scopes=SCOPES,
        code_challenge=challenge,
        state="s1",
    )
    result = await complete_authorization(
        oidc_provider, url, login="bob@example.test", expected_state="s1"
    )
    assert result["iss"] == oidc_provider.issuer
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": result["code"],
                "redirect_uri": oidc_provider.redirect_uri,
                "code_verifier": pkce_pair()[0],
                "client_id": client.client_id,
                "client_secret": client.client_secret or "",
            },
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_authorization_without_pkce_is_refused(oidc_provider: OidcProvider) -> None:
    with pytest.raises(OidcFlowError) as caught:
        await sign_in_with_pages(
            oidc_provider,
            client_id=oidc_provider.basic_client.client_id,
            client_secret=oidc_provider.basic_client.client_secret,
            redirect_uri=oidc_provider.redirect_uri,
            login="alice@example.test",
            scopes=SCOPES,
            extra_params={"code_challenge": None, "code_challenge_method": None},
        )
    assert caught.value.error == "invalid_request"
    assert "PKCE" in (caught.value.error_description or "")


@pytest.mark.parametrize("which", ["basic", "post"])
async def test_refresh_token_grant(oidc_provider: OidcProvider, which: str) -> None:
    client = oidc_provider.basic_client if which == "basic" else oidc_provider.post_client
    login = f"{which}-user@example.test"
    tokens = await _sign_in(oidc_provider, client, login)
    assert client.client_secret is not None

    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    auth: httpx2.BasicAuth | None = None
    if which == "basic":
        auth = httpx2.BasicAuth(client.client_id, client.client_secret)
    else:
        data |= {"client_id": client.client_id, "client_secret": client.client_secret}
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.token_endpoint, data=data, auth=auth or httpx2.USE_CLIENT_DEFAULT
        )
        assert response.status_code == 200, response.text
        refreshed = response.json()
        assert refreshed["access_token"] != tokens["access_token"]
        assert refreshed["scope"] == "mail"
        assert refreshed["expires_in"] > 0
        # Rotation is on by default: a new refresh token, and the old one is used up.
        assert refreshed["refresh_token"] != tokens["refresh_token"]

        info = await oidc_provider.introspect(refreshed["access_token"])
        assert info["active"] is True
        assert info["username"] == login

        again = await http.post(
            oidc_provider.token_endpoint, data=data, auth=auth or httpx2.USE_CLIENT_DEFAULT
        )
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
    # Reusing a rotated refresh token revokes the whole grant (oidc-provider's reuse detection).
    assert (await oidc_provider.introspect(refreshed["access_token"]))["active"] is False

    # The wrong authentication method for the client is refused.
    wrong = OidcClient(
        client.client_id,
        client.client_secret,
        "client_secret_post" if which == "basic" else "client_secret_basic",
    )
    response = await oidc_provider.token_request(
        wrong, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


async def test_client_credentials_token_introspects_with_username(
    oidc_provider: OidcProvider,
) -> None:
    client = oidc_provider.basic_client
    assert client.client_secret is not None
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.token_endpoint,
            data={"grant_type": "client_credentials", "scope": "mail"},
            auth=httpx2.BasicAuth(client.client_id, client.client_secret),
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert tokens["scope"] == "mail"
        assert "refresh_token" not in tokens

        # Exactly what Dovecot's oauth2 passdb sends: HTTP Basic from the URL's user:pass and a
        # form with token, empty client_id and client_secret.
        rs = oidc_provider.introspection_client
        assert rs.client_secret is not None
        response = await http.post(
            oidc_provider.introspection_endpoint,
            content=f"token={tokens['access_token']}&client_id=&client_secret=",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=httpx2.BasicAuth(rs.client_id, rs.client_secret),
        )
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["active"] is True
    assert info["username"] == oidc_provider.client_credentials_username
    assert info["client_id"] == client.client_id
    assert "sub" not in info


async def test_refresh_token_is_inactive_for_the_resource_server(
    oidc_provider: OidcProvider,
) -> None:
    client = oidc_provider.post_client
    tokens = await _sign_in(oidc_provider, client, "carol@example.test")

    as_resource_server = await oidc_provider.introspect(tokens["refresh_token"])
    assert as_resource_server == {"active": False}
    hinted = await oidc_provider.introspect(
        tokens["refresh_token"], token_type_hint="refresh_token"
    )
    assert hinted == {"active": False}

    # The policy is the reason: the client the token belongs to still sees it as active.
    as_owner = await oidc_provider.introspect(tokens["refresh_token"], client=client)
    assert as_owner["active"] is True
    # ...and the resource server does see the access token.
    assert (await oidc_provider.introspect(tokens["access_token"]))["active"] is True


async def test_device_flow(oidc_provider: OidcProvider) -> None:
    device = oidc_provider.device_client
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.device_authorization_endpoint,
            data={"client_id": device.client_id, "scope": " ".join(SCOPES)},
        )
        assert response.status_code == 200, response.text
        grant = response.json()
        assert grant["verification_uri"] == f"{oidc_provider.issuer}/device"
        assert grant["user_code"]
        assert grant["expires_in"] > 0

        poll = {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": grant["device_code"],
            "client_id": device.client_id,
        }
        pending = await http.post(oidc_provider.token_endpoint, data=poll)
        assert pending.status_code == 400
        assert pending.json()["error"] == "authorization_pending"

        await approve_device_code(
            oidc_provider,
            user_code=grant["user_code"],
            login="dave@example.test",
            verification_uri=grant["verification_uri"],
        )

        response = await http.post(oidc_provider.token_endpoint, data=poll)
        assert response.status_code == 200, response.text
        tokens = response.json()
    assert tokens["refresh_token"]
    assert _jwt_claims(tokens["id_token"])["email"] == "dave@example.test"
    info = await oidc_provider.introspect(tokens["access_token"])
    assert info["active"] is True
    assert info["username"] == "dave@example.test"


async def test_device_code_cannot_be_approved_twice(oidc_provider: OidcProvider) -> None:
    device = oidc_provider.device_client
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.device_authorization_endpoint,
            data={"client_id": device.client_id, "scope": "openid mail"},
        )
    user_code = response.json()["user_code"]
    await approve_device_code(oidc_provider, user_code=user_code, login="erin@example.test")
    with pytest.raises(OidcFlowError):
        await approve_device_code(oidc_provider, user_code=user_code, login="erin@example.test")


async def test_short_lived_tokens_without_rotation(oidc_provider_factory: Any) -> None:
    # Two seconds, not one: the provider counts expiry in whole seconds from the second the
    # token was issued in, so a one-second token can live a few milliseconds, too short for the
    # refreshed one to be introspected on a busy machine.
    provider: OidcProvider = oidc_provider_factory(access_token_ttl=2, rotate_refresh_token=False)
    client = provider.basic_client
    tokens = await _sign_in(provider, client, "frank@example.test")
    assert tokens["expires_in"] == 2

    deadline = time.monotonic() + 5
    while (await provider.introspect(tokens["access_token"]))["active"]:
        assert time.monotonic() < deadline, "access token did not expire"
        await asyncio.sleep(0.2)

    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    first = await provider.token_request(client, data)
    assert first.status_code == 200, first.text
    second = await provider.token_request(client, data)
    assert second.status_code == 200, second.text  # no rotation: the refresh token stays valid
    assert second.json()["refresh_token"] == tokens["refresh_token"]
    assert (await provider.introspect(second.json()["access_token"]))["active"] is True
