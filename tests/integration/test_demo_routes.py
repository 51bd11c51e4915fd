"""What `mailgate serve --demo` serves of the emulator: the sign-in routes only, never the control
API; URLs built from the base URL whatever the `Host` header says; bounded request bodies."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.routing import Mount, Route
from tests.support.emulator import sign_in
from tests.support.server import MailgateServer

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.web.app import create_app
from mailgate_emulator import EmulatorState, s256_challenge
from mailgate_emulator import control as emulator_control
from mailgate_emulator.demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD
from mailgate_emulator.limits import MAX_FORM_BODY

BASE = "https://mailgate.test/demo-idp"
HOSTILE = "evil.test"
ALICE = "alice@contoso.example"


@pytest.fixture
async def browser(ctx: Context) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of `serve --demo`'s app that names a hostile host in every request."""
    transport = httpx2.ASGITransport(app=create_app(ctx, run_workers=False, demo=True))
    async with httpx2.AsyncClient(
        transport=transport, base_url=f"https://{HOSTILE}", headers={"Host": HOSTILE}
    ) as client:
        yield client


def control_requests() -> list[tuple[str, str]]:
    """(method, path) of every route of the emulator's control API, as the tests use it."""
    requests: list[tuple[str, str]] = []
    for mount in emulator_control.routes(EmulatorState()):
        assert isinstance(mount, Mount)
        for route in mount.routes:
            assert isinstance(route, Route) and route.methods
            path = mount.path + route.path.format(provider="microsoft", client_id=DEMO_CLIENT_ID)
            requests += [(method, path) for method in sorted(route.methods)]
    return requests


@pytest.mark.parametrize(("method", "path"), control_requests())
async def test_every_control_route_is_not_found(
    browser: httpx2.AsyncClient, method: str, path: str
) -> None:
    answer = await browser.request(method, f"/demo-idp{path}", json={"provider": "microsoft"})
    assert answer.status_code == 404


async def test_the_sign_in_routes_are_served(browser: httpx2.AsyncClient) -> None:
    discovery = await browser.get("/demo-idp/common/v2.0/.well-known/openid-configuration")
    keys = await browser.get("/demo-idp/common/discovery/v2.0/keys")
    page = await browser.get("/demo-idp/devicelogin")
    assert (discovery.status_code, keys.status_code, page.status_code) == (200, 200, 200)
    assert keys.json()["keys"]


def claims_of(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_urls_start_with_the_base_url_whatever_the_host_header(
    ctx: Context, browser: httpx2.AsyncClient
) -> None:
    microsoft = await browser.get("/demo-idp/common/v2.0/.well-known/openid-configuration")
    google = await browser.get("/demo-idp/.well-known/openid-configuration")
    device = await browser.post(
        "/demo-idp/common/oauth2/v2.0/devicecode",
        data={"client_id": DEMO_CLIENT_ID, "scope": "openid offline_access"},
    )
    verifier = secrets.token_urlsafe(48)
    params = {
        "client_id": DEMO_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": ctx.settings.redirect_url,
        "scope": "openid email offline_access",
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    authorize = f"{microsoft.json()['authorization_endpoint']}?{httpx2.QueryParams(params)}"
    redirected = await sign_in(browser, authorize, ALICE, DEMO_PASSWORD)
    code = httpx2.URL(redirected.headers["location"]).params["code"]
    token = await browser.post(
        microsoft.json()["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "code": code,
            "redirect_uri": ctx.settings.redirect_url,
            "code_verifier": verifier,
        },
    )

    for document in (microsoft.text, google.text, device.text, token.text):
        assert HOSTILE not in document
    assert microsoft.json()["token_endpoint"] == f"{BASE}/common/oauth2/v2.0/token"
    assert microsoft.json()["jwks_uri"] == f"{BASE}/common/discovery/v2.0/keys"
    assert google.json()["issuer"] == BASE
    assert device.json()["verification_uri"] == f"{BASE}/devicelogin"
    assert redirected.headers["location"].startswith(ctx.settings.redirect_url + "?")
    assert claims_of(token.json()["id_token"])["iss"].startswith(f"{BASE}/")


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_a_body_just_over_the_limit_is_refused(browser: httpx2.AsyncClient) -> None:
    token_url = "/demo-idp/common/oauth2/v2.0/token"
    at_limit = await browser.post(token_url, content=b"a" * MAX_FORM_BODY, headers=FORM)
    over = await browser.post(token_url, content=b"a" * (MAX_FORM_BODY + 1), headers=FORM)
    assert at_limit.status_code == 400  # read, and refused as a token request
    assert over.status_code == 413


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    browser: httpx2.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 4096
            yield b"a" * 4096

    token_url = "/demo-idp/common/oauth2/v2.0/token"
    answer = await browser.post(token_url, content=chunks(), headers=FORM)
    assert answer.status_code == 413
    assert MAX_FORM_BODY < sent <= MAX_FORM_BODY + 4096  # the rest was never read


async def test_over_real_https_the_control_api_is_hidden_and_bodies_bounded(
    settings: Settings, tmp_path: Path
) -> None:
    async def just_over_the_limit() -> AsyncIterator[bytes]:
        for _ in range(MAX_FORM_BODY // 4096 + 1):
            yield b"a" * 4096

    with MailgateServer(settings, tmp_path / "tls", demo=True) as server:
        token_url = f"{server.url}/demo-idp/common/oauth2/v2.0/token"
        async with httpx2.AsyncClient(verify=server.tls()) as client:
            reset = await client.post(f"{server.url}/demo-idp/_emulator/reset")
            keys = await client.get(f"{server.url}/demo-idp/common/discovery/v2.0/keys")
            over = await client.post(token_url, content=b"a" * (MAX_FORM_BODY + 1), headers=FORM)
            chunked = await client.post(token_url, content=just_over_the_limit(), headers=FORM)

    assert (reset.status_code, keys.status_code) == (404, 200)
    assert (over.status_code, chunked.status_code) == (413, 413)
    assert over.headers["connection"] == "close"
