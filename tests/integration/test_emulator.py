"""The provider emulator over real HTTP: Microsoft and Google behaviours mailgate depends on."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx2
import pytest
import trustme
from joserfc import jwt
from joserfc.jwk import KeySet
from tests.support.emulator import EmulatorProcess, RunningEmulator

from mailgate_emulator import EmulatorState, create_app, s256_challenge

DAY = 86_400
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TENANT_DOMAIN = "contoso.example"
OTHER_TENANT_ID = "0e6a2a9e-0000-4000-8000-000000000001"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "Xy~8Q" + secrets.token_urlsafe(16)
MAILBOX = "helpdesk@contoso.example"
IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
SMTP = "https://outlook.office.com/SMTP.Send"
MS_SCOPE = f"offline_access {IMAP} {SMTP}"
GMAIL = "https://mail.google.com/"
G_CLIENT = "123456789012-abc.apps.googleusercontent.com"
G_SECRET = "GOCSPX-" + secrets.token_urlsafe(12)
G_MAILBOX = "support@example.com"

# Loading the CA bundle once instead of per client keeps each test a few milliseconds.
TLS = ssl.create_default_context()


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=5, verify=TLS) as client:
        yield client


@pytest.fixture
def microsoft(emulator: RunningEmulator) -> EmulatorState:
    """A confidential app in its home tenant, with one consented mailbox."""
    emulator.state.register_client(
        "microsoft", CLIENT_ID, SECRET, tenant_id=TENANT_ID, tenant_domain=TENANT_DOMAIN
    )
    emulator.state.register_tenant(OTHER_TENANT_ID, "fabrikam.example")
    return emulator.state


@pytest.fixture
def google(emulator: RunningEmulator) -> EmulatorState:
    emulator.state.register_client("google", G_CLIENT, G_SECRET)
    return emulator.state


def refresh_form(refresh_token: str, scope: str | None = MS_SCOPE, **extra: str) -> dict[str, str]:
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope
    return {**form, **extra}


async def ms_refresh(
    http: httpx2.AsyncClient, emulator: RunningEmulator, refresh_token: str, **extra: str
) -> httpx2.Response:
    form = refresh_form(refresh_token, client_secret=SECRET, **extra)
    return await http.post(emulator.microsoft_token_url(), data=form)


def aadsts(response: httpx2.Response) -> tuple[str, int, str]:
    """`error`, the AADSTS code and the first line of the description."""
    body = response.json()
    assert body["error_codes"] == [int(body["error_description"][6:].split(":")[0])]
    return body["error"], body["error_codes"][0], body["error_description"].split("\r\n")[0]


# --- Microsoft: refresh -------------------------------------------------------------------------


async def test_refresh_rotates_and_the_old_refresh_token_keeps_working(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    first = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert first is not None

    answer = await ms_refresh(http, emulator, first)
    body = answer.json()
    assert answer.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    assert body["scope"] == f"{IMAP} {SMTP}"
    assert body["refresh_token"] != first
    assert answer.headers["cache-control"].startswith("no-store")

    # A client that crashed before saving the new token loses nothing: the old one still works.
    again = await ms_refresh(http, emulator, first)
    assert again.status_code == 200
    assert (await ms_refresh(http, emulator, body["refresh_token"])).status_code == 200
    assert microsoft.count_requests(grant_type="refresh_token", status=200) == 3
    used = microsoft.requests(grant_type="refresh_token")
    assert [entry.refresh_token_id for entry in used].count(used[0].refresh_token_id) == 2
    assert first not in repr(used)


async def test_refresh_token_dies_after_90_days_without_use(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    old = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert old is not None

    microsoft.advance(90 * DAY - 60)
    renewed = (await ms_refresh(http, emulator, old)).json()["refresh_token"]
    microsoft.advance(60)

    dead = await ms_refresh(http, emulator, old)
    assert dead.status_code == 400
    error, code, text = aadsts(dead)
    assert (error, code) == ("invalid_grant", 700082)
    assert text.startswith("AADSTS700082: The refresh token has expired due to inactivity.")
    assert text.endswith("and was inactive for 90.00:00:00.")
    # The token issued on day 90 has its own 90 days.
    assert (await ms_refresh(http, emulator, renewed)).status_code == 200


async def test_revoked_sessions_refuse_refresh_with_aadsts50173(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    grant = microsoft.create_grant(
        "microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split(), with_access_token=True
    )
    assert grant.refresh_token is not None
    microsoft.advance(3600)
    microsoft.revoke_account("microsoft", MAILBOX)

    answer = await ms_refresh(http, emulator, grant.refresh_token)
    assert answer.status_code == 400
    error, code, text = aadsts(answer)
    assert (error, code) == ("invalid_grant", 50173)
    assert "The provided grant has expired due to it being revoked" in text
    assert "TokensValidFrom date" in text
    # A fresh consent after the password change works again.
    fresh = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split())
    assert fresh.refresh_token is not None
    assert (await ms_refresh(http, emulator, fresh.refresh_token)).status_code == 200


async def test_refresh_without_scope_is_aadsts900144(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert token is not None
    form = refresh_form(token, scope=None, client_secret=SECRET)

    answer = await http.post(emulator.microsoft_token_url(), data=form)

    assert answer.status_code == 400
    assert aadsts(answer) == (
        "invalid_request",
        900144,
        "AADSTS900144: The request body must contain the following parameter: 'scope'.",
    )


async def test_microsoft_error_body_has_the_real_shape(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    answer = await http.post(
        emulator.microsoft_token_url(),
        data=refresh_form("garbage", client_secret=SECRET),
        headers={"client-request-id": "0a49cdbc-2e94-4089-bc6f-1162b123592c"},
    )
    body = answer.json()

    assert set(body) == {
        "error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
        "error_uri",
    }  # fmt: skip
    assert body["error"] == "invalid_grant"
    assert body["error_codes"] == [9002313]
    lines = body["error_description"].split("\r\n")
    assert lines[0] == "AADSTS9002313: Invalid request. Request is malformed or invalid."
    assert lines[1] == f"Trace ID: {body['trace_id']}"
    assert lines[2] == "Correlation ID: 0a49cdbc-2e94-4089-bc6f-1162b123592c"
    assert lines[3] == f"Timestamp: {body['timestamp']}"
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=9002313"


async def test_refresh_only_reaches_consented_scopes_of_one_resource(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert token is not None

    narrower = await ms_refresh(http, emulator, token, scope=f"offline_access {IMAP}")
    assert narrower.json()["scope"] == IMAP
    default = await ms_refresh(http, emulator, token, scope="https://outlook.office.com/.default")
    assert default.json()["scope"] == f"{IMAP} {SMTP}"
    not_consented = await ms_refresh(
        http, emulator, token, scope="https://outlook.office.com/POP.AccessAsUser.All"
    )
    assert aadsts(not_consented)[:2] == ("invalid_grant", 65001)
    mixed = await ms_refresh(http, emulator, token, scope=f"{IMAP} User.Read")
    assert aadsts(mixed)[:2] == ("invalid_scope", 28000)


# --- Microsoft: clients and tenants -------------------------------------------------------------


async def test_wrong_secret_is_aadsts7000215_and_expired_secret_aadsts7000222(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert token is not None

    wrong = await http.post(
        emulator.microsoft_token_url(), data=refresh_form(token, client_secret="the-secret-id")
    )
    assert wrong.status_code == 401
    error, code, text = aadsts(wrong)
    assert (error, code) == ("invalid_client", 7000215)
    assert "not the client secret ID" in text and CLIENT_ID in text

    microsoft.update_client("microsoft", CLIENT_ID, secret_expires_at=microsoft.now() + 30 * DAY)
    assert (await ms_refresh(http, emulator, token)).status_code == 200
    microsoft.advance(30 * DAY)
    expired = await ms_refresh(http, emulator, token)
    assert expired.status_code == 401
    error, code, text = aadsts(expired)
    assert (error, code) == ("invalid_client", 7000222)
    assert text.startswith(
        f"AADSTS7000222: The provided client secret keys for app '{CLIENT_ID}' are expired."
    )

    missing = await http.post(emulator.microsoft_token_url(), data=refresh_form(token))
    assert (missing.status_code, aadsts(missing)[1]) == (401, 7000218)


async def test_client_secret_basic_and_post_both_authenticate(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    secret = "p+q:r/s%t u"  # RFC 6749 §2.3.1: form-urlencoded before Basic
    emulator.state.register_client("microsoft", CLIENT_ID, secret, tenant_id=TENANT_ID)
    token = emulator.state.create_grant(
        "microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()
    ).refresh_token
    assert token is not None
    url = emulator.microsoft_token_url(TENANT_ID)

    posted = await http.post(url, data=refresh_form(token, client_secret=secret))
    basic = await http.post(
        url,
        data={k: v for k, v in refresh_form(token).items() if k != "client_id"},
        auth=httpx2.BasicAuth(quote_plus(CLIENT_ID), quote_plus(secret)),
    )

    assert (posted.status_code, basic.status_code) == (200, 200)
    methods = [entry.auth_method for entry in emulator.state.requests(endpoint="token")]
    assert methods == ["client_secret_post", "client_secret_basic"]


async def test_public_client_refreshes_without_a_secret(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    emulator.state.register_client("microsoft", CLIENT_ID, None, tenant_id=TENANT_ID)
    token = emulator.state.create_grant(
        "microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()
    ).refresh_token
    assert token is not None

    answer = await http.post(emulator.microsoft_token_url(), data=refresh_form(token))
    with_secret = await http.post(
        emulator.microsoft_token_url(), data=refresh_form(token, client_secret="x")
    )

    assert answer.status_code == 200
    assert aadsts(with_secret)[:2] == ("invalid_client", 700025)


async def test_tenants_in_the_path(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert token is not None
    form = refresh_form(token, client_secret=SECRET)

    for tenant in ("common", "organizations", TENANT_ID, TENANT_DOMAIN):
        assert (await http.post(emulator.microsoft_token_url(tenant), data=form)).status_code == 200
    unknown = await http.post(emulator.microsoft_token_url("nowhere.example"), data=form)
    assert aadsts(unknown)[1:] == (
        90002,
        "AADSTS90002: Tenant 'nowhere.example' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud. Check with your subscription "
        "administrator, this may happen if there are no active subscriptions for the tenant.",
    )
    other = await http.post(emulator.microsoft_token_url(OTHER_TENANT_ID), data=form)
    assert aadsts(other)[:2] == ("unauthorized_client", 700016)
    assert (
        f"Application with identifier '{CLIENT_ID}' was not found in the directory"
        in aadsts(other)[2]
    )
    unknown_app = await http.post(
        emulator.microsoft_token_url(),
        data={**form, "client_id": "00000000-0000-0000-0000-000000000000"},
    )
    assert aadsts(unknown_app)[1] == 700016
    malformed = await http.post(emulator.microsoft_token_url("not a tenant"), data=form)
    assert aadsts(malformed)[1] == 900023


async def test_client_credentials_needs_a_default_scope_and_a_tenant(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    emulator.state.register_client(
        "microsoft",
        CLIENT_ID,
        SECRET,
        tenant_id=TENANT_ID,
        app_username=MAILBOX,
        allowed_scopes=["https://outlook.office365.com/IMAP.AccessAsApp"],
    )
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    url = emulator.microsoft_token_url(TENANT_ID)

    answer = await http.post(url, data={**form, "scope": "https://outlook.office365.com/.default"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}

    bare = await http.post(
        url, data={**form, "scope": "https://outlook.office365.com/IMAP.AccessAsApp"}
    )
    assert bare.status_code == 400
    assert aadsts(bare) == (
        "invalid_scope",
        1002012,
        "AADSTS1002012: The provided value for scope https://outlook.office365.com/IMAP.AccessAsApp "
        "is not valid. Client credential flows must have a scope value with /.default suffixed to "
        "the resource identifier (application ID URI).",
    )
    common = await http.post(
        emulator.microsoft_token_url(),
        data={**form, "scope": "https://outlook.office365.com/.default"},
    )
    assert aadsts(common)[:2] == ("invalid_request", 50059)


# --- Microsoft: authorization codes -------------------------------------------------------------


async def test_client_is_checked_before_the_code(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "code": "invalid-on-purpose",
    }

    good_client = await http.post(
        emulator.microsoft_token_url(), data={**form, "client_secret": SECRET}
    )
    bad_client = await http.post(
        emulator.microsoft_token_url(), data={**form, "client_secret": "nope"}
    )

    assert (good_client.status_code, aadsts(good_client)[:2]) == (400, ("invalid_grant", 70000))
    assert (bad_client.status_code, aadsts(bad_client)[:2]) == (401, ("invalid_client", 7000215))


async def test_code_with_pkce_is_redeemed_once(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = microsoft.create_authorization_code(
        "microsoft",
        CLIENT_ID,
        MAILBOX,
        [*MS_SCOPE.split(), "openid", "email"],
        code_challenge=s256_challenge(verifier),
    )
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": "https://mailgate.test/oauth/callback",
    }
    url = emulator.microsoft_token_url()

    wrong = await http.post(url, data={**form, "code_verifier": "x" * 43})
    assert aadsts(wrong) == (
        "invalid_grant",
        501481,
        "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the "
        "authorization request.",
    )
    answer = await http.post(url, data={**form, "code_verifier": verifier})
    assert answer.status_code == 200
    body = answer.json()
    assert body["refresh_token"] and body["scope"] == f"{IMAP} {SMTP}"
    again = await http.post(url, data={**form, "code_verifier": verifier})
    assert aadsts(again)[:2] == ("invalid_grant", 54005)

    # The ID token names the mailbox and verifies against the published keys.
    keys = (await http.get(f"{emulator.url}/common/discovery/v2.0/keys")).json()
    claims = jwt.decode(body["id_token"], KeySet.import_key_set(keys)).claims
    assert claims["preferred_username"] == claims["email"] == MAILBOX
    assert claims["aud"] == CLIENT_ID
    assert claims["iss"] == f"{emulator.url}/{TENANT_ID}/v2.0"


async def test_expired_code_is_aadsts70008(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    code = microsoft.create_authorization_code("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split())
    microsoft.advance(601)
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": code,
    }

    answer = await http.post(emulator.microsoft_token_url(), data=form)

    assert aadsts(answer)[:2] == ("invalid_grant", 70008)


async def test_microsoft_discovery_points_at_the_emulator(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    document = (await http.get(emulator.microsoft_discovery_url(TENANT_DOMAIN))).json()
    common = (await http.get(emulator.microsoft_discovery_url())).json()
    unknown = await http.get(emulator.microsoft_discovery_url("nowhere.example"))

    base = f"{emulator.url}/{TENANT_DOMAIN}"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert document["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert document["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert document["issuer"] == f"{emulator.url}/{TENANT_ID}/v2.0"
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_post",
        "private_key_jwt",
        "client_secret_basic",
    ]
    assert common["issuer"] == f"{emulator.url}/{{tenantid}}/v2.0"
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_tenant")


# --- Google -------------------------------------------------------------------------------------


def g_refresh_form(refresh_token: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": G_CLIENT,
        "client_secret": G_SECRET,
        "refresh_token": refresh_token,
        **extra,
    }


async def test_google_refresh_does_not_rotate(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = google.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None

    for _ in range(2):
        answer = await http.post(emulator.google_token_url, data=g_refresh_form(token))
        assert answer.status_code == 200
        assert answer.json().keys() == {"access_token", "expires_in", "scope", "token_type"}
        assert answer.json()["access_token"].startswith("ya29.")
        assert answer.json()["scope"] == GMAIL


async def test_google_testing_app_refresh_tokens_die_after_7_days(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    emulator.state.register_client("google", G_CLIENT, G_SECRET, testing=True)
    token = emulator.state.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None

    emulator.state.advance(7 * DAY - 1)
    assert (
        await http.post(emulator.google_token_url, data=g_refresh_form(token))
    ).status_code == 200
    emulator.state.advance(1)
    answer = await http.post(emulator.google_token_url, data=g_refresh_form(token))

    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


async def test_google_error_texts(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = google.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None
    url = emulator.google_token_url

    async def error(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        answer = await http.post(url, data=form)
        return answer.status_code, answer.json()

    assert await error(g_refresh_form(token, client_id="unknown.apps.googleusercontent.com")) == (
        401,
        {"error": "invalid_client", "error_description": "The OAuth client was not found."},
    )
    assert await error(g_refresh_form(token, client_secret="wrong")) == (
        401,
        {"error": "invalid_client", "error_description": "Unauthorized"},
    )
    assert await error(
        {k: v for k, v in g_refresh_form(token).items() if k != "refresh_token"}
    ) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "Missing required parameter: refresh_token",
        },
    )
    assert await error({**g_refresh_form(token), "grant_type": "client_credentials"}) == (
        400,
        {
            "error": "unsupported_grant_type",
            "error_description": "Invalid grant_type: client_credentials",
        },
    )
    assert await error(g_refresh_form("1//0never-issued")) == (
        400,
        {"error": "invalid_grant", "error_description": "Bad Request"},
    )


async def test_google_revoke_ends_the_grant(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = google.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None

    revoked = await http.post(emulator.google_revoke_url, data={"token": token})
    twice = await http.post(emulator.google_revoke_url, data={"token": token})
    refresh = await http.post(emulator.google_token_url, data=g_refresh_form(token))

    assert revoked.status_code == 200
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_token"
    assert refresh.json()["error_description"] == "Token has been expired or revoked."


async def test_google_code_exchange_returns_a_refresh_token_and_id_token(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    code = google.create_authorization_code(
        "google", G_CLIENT, G_MAILBOX, [GMAIL, "openid", "email"]
    )
    form = {
        "grant_type": "authorization_code",
        "client_id": G_CLIENT,
        "client_secret": G_SECRET,
        "code": code,
        "redirect_uri": "https://mailgate.test/oauth/callback",
    }

    body = (await http.post(emulator.google_token_url, data=form)).json()

    assert body["refresh_token"].startswith("1//")
    discovery = (await http.get(f"{emulator.url}/.well-known/openid-configuration")).json()
    assert discovery["token_endpoint"] == emulator.google_token_url
    keys = (await http.get(discovery["jwks_uri"])).json()
    claims = jwt.decode(body["id_token"], KeySet.import_key_set(keys)).claims
    assert claims["email"] == G_MAILBOX and claims["iss"] == emulator.url


# --- Introspection ------------------------------------------------------------------------------


async def introspect(
    http: httpx2.AsyncClient,
    emulator: RunningEmulator,
    token: str,
    auth: tuple[str, str] = ("dovecot", "pw"),
) -> httpx2.Response:
    # Dovecot always posts these three fields.
    form = {"token": token, "client_id": "dovecot", "client_secret": ""}
    return await http.post(emulator.introspection_url, data=form, auth=httpx2.BasicAuth(*auth))


async def test_introspection_answers_for_live_access_tokens_only(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    microsoft.register_resource_server("dovecot", "pw")
    grant = microsoft.create_grant(
        "microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split(), with_access_token=True
    )
    assert grant.access_token and grant.refresh_token

    live = (await introspect(http, emulator, grant.access_token)).json()
    assert live["active"] is True
    assert live["username"] == live["email"] == MAILBOX
    assert live["client_id"] == CLIENT_ID
    assert live["token_type"] == "Bearer"
    assert abs(live["exp"] - (microsoft.now() + 3599)) < 5

    assert (await introspect(http, emulator, grant.refresh_token)).json() == {"active": False}
    assert (await introspect(http, emulator, "unknown")).json() == {"active": False}
    microsoft.advance(3600)
    assert (await introspect(http, emulator, grant.access_token)).json() == {"active": False}

    refused = await introspect(http, emulator, grant.access_token, auth=("dovecot", "wrong"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")


async def test_introspection_of_app_only_tokens_names_the_configured_mailbox(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    emulator.state.register_resource_server("dovecot", "pw")
    emulator.state.register_client(
        "microsoft", CLIENT_ID, SECRET, tenant_id=TENANT_ID, app_username=MAILBOX
    )
    answer = await http.post(
        emulator.microsoft_token_url(TENANT_ID),
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": "https://outlook.office365.com/.default",
        },
    )

    live = (await introspect(http, emulator, answer.json()["access_token"])).json()

    assert live["active"] is True and live["username"] == MAILBOX
    assert live["aud"] == "https://outlook.office.com"


# --- Faults and the request log -----------------------------------------------------------------


async def test_faults_fail_the_next_requests_then_recover(
    emulator: RunningEmulator, microsoft: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = microsoft.create_grant("microsoft", CLIENT_ID, MAILBOX, MS_SCOPE.split()).refresh_token
    assert token is not None
    microsoft.inject_fault(status=503, count=2, provider="microsoft")
    microsoft.inject_fault(status=502, count=1)

    first, second = [await ms_refresh(http, emulator, token) for _ in range(2)]
    third = await ms_refresh(http, emulator, token)
    fourth = await ms_refresh(http, emulator, token)

    assert (first.status_code, second.status_code) == (503, 503)
    assert first.json()["error"] == "temporarily_unavailable"
    assert first.json()["error_codes"] == [90033]
    assert third.status_code == 502 and third.headers["content-type"].startswith("text/html")
    assert fourth.status_code == 200
    assert microsoft.count_requests(fault=True) == 3
    assert microsoft.count_requests(grant_type="refresh_token") == 4


async def test_fault_restricted_to_a_provider_spares_the_other(
    emulator: RunningEmulator, google: EmulatorState, http: httpx2.AsyncClient
) -> None:
    token = google.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None
    google.inject_fault(status=500, count=None, provider="microsoft")

    answer = await http.post(emulator.google_token_url, data=g_refresh_form(token))

    assert answer.status_code == 200
    assert len(google.faults) == 1


async def test_delay_fault_makes_a_client_time_out(
    emulator: RunningEmulator, google: EmulatorState
) -> None:
    token = google.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None
    google.inject_fault(status=None, delay=0.4)

    async with httpx2.AsyncClient(timeout=0.1, verify=TLS) as impatient:
        with pytest.raises(httpx2.ReadTimeout):
            await impatient.post(emulator.google_token_url, data=g_refresh_form(token))
        answer = await impatient.post(emulator.google_token_url, data=g_refresh_form(token))

    assert answer.status_code == 200


async def test_a_delayed_request_outliving_a_reset_touches_nothing() -> None:
    # In-process, with the delay's sleep held open by the test: no timing involved.
    state = EmulatorState()
    state.register_client("google", G_CLIENT, G_SECRET)
    token = state.create_grant("google", G_CLIENT, G_MAILBOX, [GMAIL]).refresh_token
    assert token is not None
    state.inject_fault(status=500, delay=30)
    sleeping, release = asyncio.Event(), asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        sleeping.set()
        await release.wait()

    transport = httpx2.ASGITransport(app=create_app(state, sleep=held_sleep))
    async with httpx2.AsyncClient(transport=transport, base_url="http://emulator") as client:
        pending = asyncio.create_task(client.post("/token", data=g_refresh_form(token)))
        await sleeping.wait()
        state.reset()
        release.set()
        answer = await pending

    assert answer.status_code == 503
    assert state.count_requests() == 0


async def test_control_api_drives_a_scenario_over_http(
    emulator: RunningEmulator, http: httpx2.AsyncClient
) -> None:
    control = f"{emulator.url}/_emulator"
    client = await http.post(
        f"{control}/clients",
        json={"provider": "microsoft", "client_id": CLIENT_ID, "client_secret": SECRET,
              "tenant_id": TENANT_ID, "secret_expires_in": 10 * DAY},
    )  # fmt: skip
    assert client.status_code == 201 and client.json()["public"] is False
    grant = (
        await http.post(
            f"{control}/grants",
            json={
                "provider": "microsoft",
                "client_id": CLIENT_ID,
                "account": MAILBOX,
                "scopes": MS_SCOPE,
            },
        )
    ).json()

    assert (await ms_refresh(http, emulator, grant["refresh_token"])).status_code == 200
    await http.post(f"{control}/faults", json={"status": 500, "count": 1})
    assert (await ms_refresh(http, emulator, grant["refresh_token"])).status_code == 500
    clock = (await http.post(f"{control}/clock/advance", json={"seconds": 11 * DAY})).json()
    assert clock["offset"] == 11 * DAY
    assert aadsts(await ms_refresh(http, emulator, grant["refresh_token"]))[1] == 7000222

    log = (await http.get(f"{control}/requests", params={"grant_type": "refresh_token"})).json()
    assert [entry["status"] for entry in log["requests"]] == [200, 500, 401]
    assert log["requests"][0]["refresh_token_id"] == grant["refresh_token_id"]
    bad = await http.post(f"{control}/grants", json={"provider": "microsoft"})
    assert bad.status_code == 422
    unknown = await http.post(
        f"{control}/grants",
        json={"provider": "google", "client_id": "nope", "account": MAILBOX, "scopes": [GMAIL]},
    )
    assert unknown.status_code == 404
    assert (await http.post(f"{control}/reset")).json() == {"reset": True}
    assert emulator.state.count_requests() == 0


# --- Serving ------------------------------------------------------------------------------------


def test_subprocess_emulator_announces_its_port_and_loads_a_config(tmp_path: Path) -> None:
    config = tmp_path / "emulator.json"
    config.write_text(
        json.dumps(
            {
                "clients": [{"provider": "google", "client_id": G_CLIENT, "client_secret": G_SECRET}],
                "grants": [
                    {"provider": "google", "client_id": G_CLIENT, "account": G_MAILBOX,
                     "scopes": GMAIL, "refresh_token": "1//0demo"}
                ],
            }
        )
    )  # fmt: skip

    with EmulatorProcess("--config", str(config)) as process:
        answer = httpx2.post(f"{process.url}/token", data=g_refresh_form("1//0demo"), timeout=5)

    assert process.url.startswith("http://127.0.0.1:")
    assert answer.status_code == 200


async def test_serves_https(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context()
    authority.configure_trust(context)

    with RunningEmulator(ssl_certfile=cert, ssl_keyfile=key) as running:
        async with httpx2.AsyncClient(verify=context) as client:
            answer = await client.get(f"{running.url}/.well-known/openid-configuration")

    assert running.url.startswith("https://")
    assert answer.json()["token_endpoint"] == f"{running.url}/token"
