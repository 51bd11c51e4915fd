"""The emulator's interactive parts over real HTTP: sign-in and consent pages, device codes."""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet
from tests.support.emulator import (
    RunningEmulator,
    page_alerts,
    parse_forms,
    sign_in,
    verify_device,
)

from mailgate_emulator import EmulatorState, create_app, s256_challenge
from mailgate_emulator.demo import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_TENANT_ID,
    demo_state,
)
from mailgate_emulator.serve import EmulatorServer

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TENANT_DOMAIN = "contoso.example"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "Xy~8Q" + secrets.token_urlsafe(16)
PUBLIC_CLIENT_ID = "0f5e6b52-1111-4aaa-8bbb-3c4d5e6f7a8b"
CALLBACK = "https://mailgate.test/oauth/callback"
ALICE = "alice@contoso.example"
PASSWORD = "correct horse"
IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
MS_SCOPE = f"openid email profile offline_access {IMAP}"
G_CLIENT = "123456789012-abc.apps.googleusercontent.com"
G_SECRET = "GOCSPX-" + secrets.token_urlsafe(12)
G_USER = "support@example.com"
GMAIL = "https://mail.google.com/"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    # A browser: keeps cookies, and stops at the redirect back to the app.
    async with httpx2.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def microsoft(emulator: RunningEmulator) -> EmulatorState:
    state = emulator.state
    state.register_client(
        "microsoft",
        CLIENT_ID,
        SECRET,
        tenant_id=TENANT_ID,
        tenant_domain=TENANT_DOMAIN,
        redirect_uris=[CALLBACK],
    )
    state.register_account(
        "microsoft", ALICE, PASSWORD, tenant_id=TENANT_ID, display_name="Alice Example"
    )
    return state


@pytest.fixture
def google(emulator: RunningEmulator) -> EmulatorState:
    state = emulator.state
    state.register_client("google", G_CLIENT, G_SECRET, redirect_uris=[CALLBACK])
    state.register_account("google", G_USER, PASSWORD)
    return state


def ms_params(verifier: str, **extra: str) -> dict[str, str]:
    return {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": MS_SCOPE,
        "state": "st-123",
        "nonce": "nonce-456",
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
        "response_mode": "query",
        **extra,
    }


def g_params(**extra: str) -> dict[str, str]:
    return {
        "client_id": G_CLIENT,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": f"openid email {GMAIL}",
        "state": "g-state",
        "nonce": "g-nonce",
        "access_type": "offline",
        **extra,
    }


def redirect_query(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def first_line(description: str) -> str:
    return description.split("\r\n")[0]


async def ms_exchange(
    http: httpx2.AsyncClient,
    emulator: RunningEmulator,
    code: str,
    verifier: str,
    redirect_uri: str = CALLBACK,
) -> httpx2.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "scope": MS_SCOPE,
    }
    return await http.post(emulator.microsoft_token_url(), data=form)


async def verified_claims(http: httpx2.AsyncClient, jwks_url: str, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set((await http.get(jwks_url)).json())
    return dict(jwt.decode(token, keys).claims)


# --- Microsoft: authorization code flow ----------------------------------------------------------


async def test_microsoft_code_flow_with_pkce_signs_in_at_common_as_the_accounts_tenant(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    url = emulator.microsoft_authorize_url("common", **ms_params(verifier, login_hint=ALICE))

    page = await http.get(url)
    assert page.status_code == 200 and "Emulator" in page.text
    sign_in_form = parse_forms(page.text)[0]
    assert sign_in_form.method == "post" and sign_in_form.action == "/common/login"
    assert sign_in_form.fields["login"] == ALICE  # login_hint pre-fills the field
    assert set(sign_in_form.fields) == {"flow", "login", "password"}

    consent = await http.post(
        f"{emulator.url}{sign_in_form.action}", data=sign_in_form.data(password=PASSWORD)
    )
    consent_form = parse_forms(consent.text)[0]
    assert consent_form.buttons == {"decision": ["accept", "cancel"]}
    assert IMAP in consent.text and "offline_access" in consent.text

    redirected = await http.post(
        f"{emulator.url}{consent_form.action}", data=consent_form.data(decision="accept")
    )
    query = redirect_query(redirected)
    assert query["state"] == "st-123" and query["session_state"]

    answer = await ms_exchange(http, emulator, query["code"], verifier)
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["refresh_token"] and body["scope"] == IMAP
    jwks = f"{emulator.url}/common/discovery/v2.0/keys"
    claims = await verified_claims(http, jwks, body["id_token"])
    account = microsoft.account("microsoft", ALICE)
    assert claims["iss"] == f"{emulator.url}/{TENANT_ID}/v2.0"
    assert claims["tid"] == TENANT_ID and claims["oid"] == account.subject
    assert claims["aud"] == CLIENT_ID and claims["nonce"] == "nonce-456"
    assert claims["preferred_username"] == claims["email"] == ALICE
    assert claims["name"] == "Alice Example"
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    discovery = (await http.get(emulator.microsoft_discovery_url("common"))).json()
    assert discovery["issuer"] == f"{emulator.url}/{{tenantid}}/v2.0"
    assert discovery["authorization_endpoint"] == f"{emulator.url}/common/oauth2/v2.0/authorize"
    logged = microsoft.requests(endpoint="authorize")
    assert [(entry.status, entry.client_id) for entry in logged] == [(200, CLIENT_ID)]


async def test_wrong_password_shows_the_sign_in_page_again(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    url = emulator.microsoft_authorize_url(TENANT_DOMAIN, **ms_params("v" * 43))

    wrong = await sign_in(http, url, ALICE, "not the password")
    unknown = await sign_in(http, url, "mallory@contoso.example", PASSWORD)

    assert wrong.status_code == 200 and "password" in parse_forms(wrong.text)[0].fields
    assert page_alerts(wrong.text) == [
        "Your account or password is incorrect. If you don't remember your password, reset it now."
    ]
    assert parse_forms(wrong.text)[0].fields["login"] == ALICE
    assert page_alerts(unknown.text)[0].startswith("This username may be incorrect.")
    assert not http.cookies  # no session without a good password


async def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    elsewhere = "https://attacker.example/cb"
    url = emulator.microsoft_authorize_url(**ms_params("v" * 43, redirect_uri=elsewhere))
    unknown_app = emulator.microsoft_authorize_url(**ms_params("v" * 43, client_id="nope"))

    page = await http.get(url)
    missing = await http.get(unknown_app)

    assert page.status_code == 400 and "location" not in page.headers
    assert (
        f"AADSTS50011: The redirect URI &#x27;{elsewhere}&#x27; specified in the request does not "
        f"match the redirect URIs configured for the application &#x27;{CLIENT_ID}&#x27;."
    ) in page.text
    assert "Emulator" in page.text
    assert missing.status_code == 400 and "AADSTS700016: Application with identifier" in (
        missing.text
    )
    assert [entry.status for entry in microsoft.requests(endpoint="authorize")] == [400, 400]


async def test_cancel_on_consent_redirects_access_denied(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    url = emulator.microsoft_authorize_url(**ms_params("v" * 43))

    query = redirect_query(await sign_in(http, url, ALICE, PASSWORD, decision="cancel"))

    assert query["error"] == "access_denied" and query["state"] == "st-123"
    assert first_line(query["error_description"]) == (
        "AADSTS65004: User declined to consent to access the app."
    )
    assert "code" not in query


async def test_admin_consent_required_until_an_administrator_consents(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    microsoft.update_client("microsoft", CLIENT_ID, admin_consent_required=True)
    url = emulator.microsoft_authorize_url(**ms_params("v" * 43))

    refused = redirect_query(await sign_in(http, url, ALICE, PASSWORD))
    microsoft.grant_admin_consent(CLIENT_ID, TENANT_ID, [IMAP])
    allowed = redirect_query(await sign_in(http, url, ALICE, PASSWORD))

    assert refused["error"] == "consent_required"
    assert first_line(refused["error_description"]).startswith(
        f"AADSTS65001: The user or administrator has not consented to use the application with "
        f"ID '{CLIENT_ID}'"
    )
    assert "code" in allowed


async def test_code_is_single_use_bound_to_verifier_and_redirect_uri(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    url = emulator.microsoft_authorize_url(**ms_params(verifier))
    code = redirect_query(await sign_in(http, url, ALICE, PASSWORD))["code"]

    wrong_verifier = await ms_exchange(http, emulator, code, "x" * 43)
    wrong_redirect = await ms_exchange(http, emulator, code, verifier, "https://other.test/cb")
    good = await ms_exchange(http, emulator, code, verifier)
    replay = await ms_exchange(http, emulator, code, verifier)

    assert first_line(wrong_verifier.json()["error_description"]).startswith("AADSTS501481:")
    assert first_line(wrong_redirect.json()["error_description"]).startswith("AADSTS500112:")
    assert good.status_code == 200
    assert replay.json()["error_codes"] == [54005]


async def test_prompt_none_needs_a_session_and_a_session_skips_the_pages(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    interactive = emulator.microsoft_authorize_url(**ms_params("v" * 43))
    silent = emulator.microsoft_authorize_url(**ms_params("v" * 43, prompt="none"))
    forcing = emulator.microsoft_authorize_url(**ms_params("v" * 43, prompt="consent"))

    without_session = redirect_query(await http.get(silent))
    redirect_query(await sign_in(http, interactive, ALICE, PASSWORD))
    with_session = redirect_query(await http.get(silent))
    forced = await http.get(forcing)

    assert without_session["error"] == "login_required"
    assert first_line(without_session["error_description"]).startswith(
        "AADSTS50058: A silent sign-in request was sent but no user is signed in."
    )
    assert "code" in with_session  # signed in and consented: no page at all
    assert parse_forms(forced.text)[0].buttons == {"decision": ["accept", "cancel"]}


# --- Google: authorization code flow -------------------------------------------------------------


async def test_google_refresh_token_only_on_first_consent_or_prompt_consent(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    async def exchange(code: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "client_id": G_CLIENT,
            "client_secret": G_SECRET,
            "code": code,
            "redirect_uri": CALLBACK,
        }
        return dict((await http.post(emulator.google_token_url, data=form)).json())

    first = redirect_query(
        await sign_in(http, emulator.google_authorize_url(**g_params()), G_USER, PASSWORD)
    )
    again = redirect_query(await http.get(emulator.google_authorize_url(**g_params())))
    forced = redirect_query(
        await sign_in(
            http, emulator.google_authorize_url(**g_params(prompt="consent")), G_USER, PASSWORD
        )
    )

    assert (first["authuser"], first["prompt"], first["scope"]) == (
        "0",
        "consent",
        f"openid email {GMAIL}",
    )
    assert again["prompt"] == "none"  # consented before: straight back, no consent screen
    first_tokens, again_tokens, forced_tokens = (
        await exchange(first["code"]),
        await exchange(again["code"]),
        await exchange(forced["code"]),
    )
    assert first_tokens["refresh_token"].startswith("1//")
    assert "refresh_token" not in again_tokens and again_tokens["access_token"]
    assert forced_tokens["refresh_token"]
    claims = await verified_claims(
        http, f"{emulator.url}/oauth2/v3/certs", first_tokens["id_token"]
    )
    assert claims["iss"] == emulator.url and claims["aud"] == G_CLIENT
    assert claims["email"] == G_USER and claims["email_verified"] is True
    assert (
        claims["nonce"] == "g-nonce" and claims["sub"] == google.account("google", G_USER).subject
    )


async def test_google_redirect_mismatch_page_and_cancel(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    mismatch = await http.get(
        emulator.google_authorize_url(**g_params(redirect_uri="http://localhost/cb"))
    )
    cancelled = redirect_query(
        await sign_in(
            http, emulator.google_authorize_url(**g_params()), G_USER, PASSWORD, decision="cancel"
        )
    )

    assert mismatch.status_code == 400 and "location" not in mismatch.headers
    assert "Error 400: redirect_uri_mismatch" in mismatch.text
    assert "redirect_uri=http://localhost/cb flowName=GeneralOAuthFlow" in mismatch.text
    assert cancelled == {"error": "access_denied", "state": "g-state"}


async def test_google_include_granted_scopes_adds_earlier_grants(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    identity = emulator.google_authorize_url(**g_params(scope="openid email"))
    redirect_query(await sign_in(http, identity, G_USER, PASSWORD))
    mail = emulator.google_authorize_url(**g_params(scope=GMAIL, include_granted_scopes="true"))

    query = redirect_query(await sign_in(http, mail, G_USER, PASSWORD))

    assert query["scope"] == f"{GMAIL} email openid"


# --- Device code flow ----------------------------------------------------------------------------


async def test_microsoft_device_flow_pending_slow_down_then_tokens(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    microsoft.register_client("microsoft", PUBLIC_CLIENT_ID, tenant_id=TENANT_ID)
    started = await http.post(
        emulator.microsoft_devicecode_url("organizations"),
        data={"client_id": PUBLIC_CLIENT_ID, "scope": MS_SCOPE},
    )
    grant = started.json()
    poll = {
        "grant_type": DEVICE_GRANT,
        "client_id": PUBLIC_CLIENT_ID,
        "device_code": grant["device_code"],
    }
    token_url = emulator.microsoft_token_url("organizations")

    pending = (await http.post(token_url, data=poll)).json()
    too_fast = (await http.post(token_url, data=poll)).json()
    microsoft.advance(10)  # the interval grew from 5 to 10 s
    done = await verify_device(
        http, grant["verification_uri"], grant["user_code"].lower(), ALICE, PASSWORD
    )
    tokens = await http.post(token_url, data=poll)
    replay = (await http.post(token_url, data=poll)).json()

    assert grant["verification_uri"] == f"{emulator.url}/devicelogin"
    assert (grant["expires_in"], grant["interval"]) == (900, 5)
    assert grant["message"] == (
        f"To sign in, use a web browser to open the page {emulator.url}/devicelogin and enter the "
        f"code {grant['user_code']} to authenticate."
    )
    assert pending["error"] == "authorization_pending" and pending["error_codes"] == [70016]
    assert first_line(pending["error_description"]) == (
        "AADSTS70016: The provided request has not yet been authorized by the user. The user must "
        "input their code."
    )
    assert too_fast["error"] == "slow_down"
    assert done.status_code == 200 and "You have signed in" in done.text
    body = tokens.json()
    assert tokens.status_code == 200, body
    assert body["refresh_token"] and body["id_token"] and body["scope"] == IMAP
    assert replay["error"] == "invalid_grant"
    assert microsoft.count_requests(endpoint="devicecode", status=200) == 1


async def test_microsoft_device_code_declined_expired_and_secret_rules(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    # A confidential app that allows public client flows polls without its secret.
    microsoft.register_client(
        "microsoft", PUBLIC_CLIENT_ID, SECRET, tenant_id=TENANT_ID, allow_public_client_flows=True
    )
    url, token_url = emulator.microsoft_devicecode_url(), emulator.microsoft_token_url()

    async def start(client_id: str = PUBLIC_CLIENT_ID) -> dict[str, Any]:
        answer = await http.post(url, data={"client_id": client_id, "scope": MS_SCOPE})
        return dict(answer.json())

    async def poll(grant: dict[str, Any], client_id: str = PUBLIC_CLIENT_ID) -> dict[str, Any]:
        form = {
            "grant_type": DEVICE_GRANT,
            "client_id": client_id,
            "device_code": grant["device_code"],
        }
        return dict((await http.post(token_url, data=form)).json())

    declined, expiring, confidential = await start(), await start(), await start(CLIENT_ID)
    microsoft.approve_device_code(declined["user_code"], ALICE, deny=True)

    refused = await poll(declined)
    no_secret = await poll(confidential, CLIENT_ID)
    microsoft.advance(900)
    gone = await poll(expiring)

    assert refused["error"] == "authorization_declined"
    assert no_secret["error_codes"] == [7000218]  # CLIENT_ID does not allow public client flows
    assert gone["error"] == "expired_token"
    assert first_line(gone["error_description"]) == (
        "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. "
        "This device code has expired."
    )


async def test_google_device_flow(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    url = emulator.google_device_code_url
    gmail = await http.post(url, data={"client_id": G_CLIENT, "scope": f"email {GMAIL}"})
    grant = (await http.post(url, data={"client_id": G_CLIENT, "scope": "openid email"})).json()
    denied = (await http.post(url, data={"client_id": G_CLIENT, "scope": "email"})).json()

    def poll(device: dict[str, Any]) -> dict[str, str]:
        return {
            "grant_type": DEVICE_GRANT,
            "client_id": G_CLIENT,
            "client_secret": G_SECRET,
            "device_code": device["device_code"],
        }

    pending = await http.post(emulator.google_token_url, data=poll(grant))
    slow = await http.post(emulator.google_token_url, data=poll(grant))
    google.advance(10)
    done = await verify_device(
        http, grant["verification_url"], grant["user_code"], G_USER, PASSWORD
    )
    tokens = (await http.post(emulator.google_token_url, data=poll(grant))).json()
    await verify_device(
        http, denied["verification_url"], denied["user_code"], G_USER, PASSWORD, decision="cancel"
    )
    refused = await http.post(emulator.google_token_url, data=poll(denied))
    google.advance(1800)
    expired = await http.post(emulator.google_token_url, data=poll(denied))

    # Google's device flow does not allow Gmail's scope at all.
    assert gmail.status_code == 400
    assert gmail.json() == {
        "error": "invalid_scope",
        "error_description": f"Invalid device flow scope: {GMAIL}",
    }
    assert grant["verification_url"] == f"{emulator.url}/device"
    assert (grant["expires_in"], grant["interval"]) == (1800, 5)
    assert (pending.status_code, pending.json()["error"]) == (428, "authorization_pending")
    assert (slow.status_code, slow.json()["error"]) == (403, "slow_down")
    assert "Success!" in done.text
    assert tokens["refresh_token"] and tokens["id_token"]
    assert (refused.status_code, refused.json()["error"]) == (403, "access_denied")
    assert expired.json()["error"] == "expired_token"


# --- The control API and mounting ----------------------------------------------------------------


async def test_control_api_drives_sign_in_without_html(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    control = f"{emulator.url}/_emulator"
    client = {
        "provider": "microsoft",
        "client_id": PUBLIC_CLIENT_ID,
        "tenant_id": TENANT_ID,
        "redirect_uris": [CALLBACK],
        "admin_consent_required": True,
    }
    assert (await http.post(f"{control}/clients", json=client)).status_code == 201
    account = {
        "provider": "microsoft",
        "address": ALICE,
        "password": PASSWORD,
        "tenant_id": TENANT_ID,
    }
    created = await http.post(f"{control}/accounts", json=account)
    assert created.status_code == 201 and "password" not in created.json()
    url = emulator.microsoft_authorize_url(**{**ms_params("v" * 43), "client_id": PUBLIC_CLIENT_ID})

    refused = await http.post(
        f"{control}/authorizations/complete", json={"url": url, "account": ALICE}
    )
    consent = {"client_id": PUBLIC_CLIENT_ID, "tenant_id": TENANT_ID}
    assert (await http.post(f"{control}/admin-consents", json=consent)).status_code == 201
    allowed = await http.post(
        f"{control}/authorizations/complete", json={"url": url, "account": ALICE}
    )
    device = (
        await http.post(
            emulator.microsoft_devicecode_url(),
            data={"client_id": PUBLIC_CLIENT_ID, "scope": "openid"},
        )
    ).json()
    approval = {"user_code": device["user_code"], "account": ALICE}
    approved = await http.post(f"{control}/device-codes/approve", json=approval)

    assert "error=consent_required" in refused.json()["location"]
    assert "code=" in allowed.json()["location"]
    assert approved.json() == {"user_code": device["user_code"], "status": "approved"}


@pytest.fixture
def mounted() -> Iterator[tuple[str, EmulatorState]]:
    """The demo preset inside a FastAPI app at `/demo-idp`, served by uvicorn."""
    state = demo_state([CALLBACK])
    outer = FastAPI()
    outer.mount("/demo-idp", create_app(state))
    config = uvicorn.Config(outer, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = EmulatorServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.startup_finished.wait(10) and server.started
    host, port = server.bound_address()
    try:
        yield f"http://{host}:{port}/demo-idp", state
    finally:
        server.should_exit = True
        thread.join(10)


async def test_mounted_under_a_prefix_every_url_carries_it(
    mounted: tuple[str, EmulatorState], http: httpx2.AsyncClient
) -> None:
    base, _state = mounted
    discovery = (
        await http.get(f"{base}/organizations/v2.0/.well-known/openid-configuration")
    ).json()
    verifier = secrets.token_urlsafe(48)
    params = {
        **ms_params(verifier),
        "client_id": DEMO_CLIENT_ID,
        "scope": "openid email offline_access",
    }
    authorize = f"{discovery['authorization_endpoint']}?{httpx2.QueryParams(params)}"
    page = await http.get(authorize)
    redirected = await sign_in(http, authorize, "bob@contoso.example", DEMO_PASSWORD)
    code = redirect_query(redirected)["code"]
    form = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "scope": "openid email offline_access",
    }
    tokens = (await http.post(discovery["token_endpoint"], data=form)).json()
    device = (
        await http.post(
            f"{base}/contoso.example/oauth2/v2.0/devicecode",
            data={"client_id": DEMO_CLIENT_ID, "scope": "openid"},
        )
    ).json()

    assert discovery["token_endpoint"] == f"{base}/organizations/oauth2/v2.0/token"
    assert discovery["jwks_uri"] == f"{base}/organizations/discovery/v2.0/keys"
    assert parse_forms(page.text)[0].action == "/demo-idp/organizations/login"
    assert [cookie.path for cookie in http.cookies.jar] == ["/demo-idp"]
    claims = await verified_claims(http, discovery["jwks_uri"], tokens["id_token"])
    assert claims["iss"] == f"{base}/{DEMO_TENANT_ID}/v2.0"
    assert claims["name"] == "Bob Demo"
    assert device["verification_uri"] == f"{base}/devicelogin"
    devicelogin = await http.get(device["verification_uri"])
    assert parse_forms(devicelogin.text)[0].action == "/demo-idp/devicelogin"
