import pytest

from mailgate.errors import BadInput
from mailgate.providers import (
    app_scopes_from,
    check_provider,
    check_tenant,
    endpoints_from_discovery,
    generic_token_auth,
    google_endpoints,
    microsoft_app_scopes,
    microsoft_endpoints,
    microsoft_scopes,
)


@pytest.mark.parametrize(
    ("cloud", "host"),
    [
        ("global", "login.microsoftonline.com"),
        ("usgov", "login.microsoftonline.us"),
        ("china", "login.chinacloudapi.cn"),
    ],
)
def test_microsoft_endpoints_follow_cloud_and_tenant(cloud: str, host: str) -> None:
    endpoints = microsoft_endpoints("contoso.onmicrosoft.com", cloud, None)
    base = f"https://{host}/contoso.onmicrosoft.com"
    assert endpoints.authorization_endpoint == f"{base}/oauth2/v2.0/authorize"
    assert endpoints.token_endpoint == f"{base}/oauth2/v2.0/token"
    assert endpoints.device_authorization_endpoint == f"{base}/oauth2/v2.0/devicecode"


def test_microsoft_authority_replaces_the_login_host() -> None:
    endpoints = microsoft_endpoints("common", "global", "http://127.0.0.1:9999/")
    assert endpoints.token_endpoint == "http://127.0.0.1:9999/common/oauth2/v2.0/token"


def test_microsoft_scopes_by_use_always_offline_access() -> None:
    assert microsoft_scopes("global", ["imap", "pop", "smtp"])[:4] == [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/POP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ]
    assert microsoft_scopes("usgov", ["imap"])[0] == (
        "https://outlook.office365.us/IMAP.AccessAsUser.All"
    )
    assert "offline_access" in microsoft_scopes("china", ["smtp"])


def test_microsoft_app_only_scope_is_cloud_adjusted() -> None:
    assert microsoft_app_scopes("global") == ["https://outlook.office365.com/.default"]
    assert microsoft_app_scopes("usgov") == ["https://outlook.office365.us/.default"]
    assert microsoft_app_scopes("china") == ["https://partner.outlook.cn/.default"]


@pytest.mark.parametrize(
    "tenant",
    ["common", "organizations", "consumers", "contoso.com", "9188040d-6c67-4c5b-b112-36a304b66dad"],
)
def test_valid_tenants(tenant: str) -> None:
    assert check_tenant(tenant) == tenant


@pytest.mark.parametrize("tenant", ["contoso", "a b", "https://login.microsoftonline.com/x", ""])
def test_invalid_tenants_say_what_is_valid(tenant: str) -> None:
    with pytest.raises(BadInput, match="common, organizations, consumers"):
        check_tenant(tenant)


def test_unknown_provider() -> None:
    with pytest.raises(BadInput, match="microsoft, google, generic"):
        check_provider("yahoo")


def test_google_endpoints() -> None:
    endpoints = google_endpoints(None)
    assert endpoints.token_endpoint == "https://oauth2.googleapis.com/token"
    assert endpoints.authorization_endpoint == "https://accounts.google.com/o/oauth2/v2/auth"
    assert endpoints.device_authorization_endpoint == "https://oauth2.googleapis.com/device/code"


def test_generic_prefers_client_secret_basic() -> None:
    assert (
        generic_token_auth(["client_secret_post", "client_secret_basic"]) == "client_secret_basic"
    )
    assert generic_token_auth(["client_secret_post", "private_key_jwt"]) == "client_secret_post"
    assert generic_token_auth([]) == "client_secret_basic"


def test_discovery_document_is_read() -> None:
    endpoints = endpoints_from_discovery(
        {
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "device_authorization_endpoint": "https://idp.example/device",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid", "mail"],
        },
        "https://idp.example/.well-known/openid-configuration",
    )
    assert endpoints.token_endpoint == "https://idp.example/token"
    assert endpoints.device_authorization_endpoint == "https://idp.example/device"
    assert endpoints.token_auth_methods == ["client_secret_post"]


def test_discovery_document_with_http_endpoint_is_refused() -> None:
    with pytest.raises(BadInput, match="https://"):
        endpoints_from_discovery(
            {"token_endpoint": "http://idp.example/token"}, "https://idp.example/.well-known/x"
        )


def test_discovery_document_without_token_endpoint_is_refused() -> None:
    with pytest.raises(BadInput, match="no token_endpoint"):
        endpoints_from_discovery({"issuer": "x"}, "https://idp.example/.well-known/x")


def test_app_scopes_drop_oidc_scopes() -> None:
    assert app_scopes_from(["openid", "mail", "offline_access", "email"]) == ["mail"]
