"""Provider presets: what an integration's endpoints, scopes and client authentication are.

Microsoft identity platform v2.0 (tenants, clouds), Google, and generic providers described by
an OpenID Connect / RFC 8414 discovery document or by endpoints typed in. The functions here are
pure except `discover`, which reads a discovery document over HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx2

from mailgate.config import require_https_endpoint
from mailgate.errors import BadInput
from mailgate.http import HttpFactory

PROVIDERS = ("microsoft", "google", "generic")
USES = ("imap", "pop", "smtp")
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
OIDC_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})


@dataclass(frozen=True)
class Cloud:
    """A Microsoft national cloud: its login host and the Exchange Online resources."""

    login_host: str
    delegated_resource: str  # prefix of the delegated IMAP/POP/SMTP scopes
    app_resource: str  # resource of the app-only `.default` scope


# https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
# GCC (moderate) uses the global endpoints; mixing clouds gives AADSTS900382.
MICROSOFT_CLOUDS = {
    "global": Cloud(
        "login.microsoftonline.com", "https://outlook.office.com/", "https://outlook.office365.com/"
    ),
    "usgov": Cloud(
        "login.microsoftonline.us", "https://outlook.office365.us/", "https://outlook.office365.us/"
    ),
    "china": Cloud(
        "login.chinacloudapi.cn", "https://partner.outlook.cn/", "https://partner.outlook.cn/"
    ),
}
MICROSOFT_USE_SCOPES = {
    "imap": "IMAP.AccessAsUser.All",
    "pop": "POP.AccessAsUser.All",
    "smtp": "SMTP.Send",
}
MICROSOFT_TENANT_ALIASES = ("common", "organizations", "consumers")
_TENANT_RE = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)$"
)

GOOGLE_AUTHORIZATION = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_DEVICE = "https://oauth2.googleapis.com/device/code"
GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
GOOGLE_USERINFO = "https://openidconnect.googleapis.com/v1/userinfo"
GOOGLE_JWKS = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"


@dataclass
class Endpoints:
    """What a preset or a discovery document resolves to."""

    token_endpoint: str
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    issuer: str | None = None
    token_auth_methods: list[str] = field(default_factory=list)
    scopes_supported: list[str] = field(default_factory=list)


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise BadInput(
            f"Unknown provider {provider!r}: use one of {', '.join(PROVIDERS)} "
            "(generic for any other standards-based OAuth 2.0 server)."
        )
    return provider


def check_tenant(tenant: str) -> str:
    if tenant in MICROSOFT_TENANT_ALIASES or (len(tenant) <= 200 and _TENANT_RE.fullmatch(tenant)):
        return tenant
    raise BadInput(
        f"Tenant {tenant!r} is not valid: use common, organizations, consumers, the directory "
        "(tenant) ID shown in Entra ID, or a verified domain such as contoso.onmicrosoft.com."
    )


def check_cloud(cloud: str) -> Cloud:
    try:
        return MICROSOFT_CLOUDS[cloud]
    except KeyError:
        raise BadInput(
            f"Unknown cloud {cloud!r}: use global (includes GCC), usgov (GCC High / DoD) or china."
        ) from None


def check_uses(uses: list[str]) -> list[str]:
    for use in uses:
        if use not in USES:
            raise BadInput(
                f"Unknown use {use!r}: use imap, pop or smtp (repeat --use for several)."
            )
    return sorted(dict.fromkeys(uses), key=USES.index)


def default_tenant(account_type: str | None) -> str:
    return {"work": "organizations", "personal": "consumers"}.get(account_type or "", "common")


def microsoft_endpoints(tenant: str, cloud: str, authority: str | None) -> Endpoints:
    """Microsoft identity platform v2.0 endpoints for a tenant in a cloud."""
    base = (authority or f"https://{check_cloud(cloud).login_host}").rstrip("/") + f"/{tenant}"
    return Endpoints(
        authorization_endpoint=f"{base}/oauth2/v2.0/authorize",
        token_endpoint=f"{base}/oauth2/v2.0/token",
        device_authorization_endpoint=f"{base}/oauth2/v2.0/devicecode",
        jwks_uri=f"{base}/discovery/v2.0/keys",
        issuer=f"{base}/v2.0",
    )


def microsoft_scopes(cloud: str, uses: list[str]) -> list[str]:
    """Delegated scopes: one per use, `offline_access` always (no refresh token without it),
    and `openid email` so the signed-in account can be named."""
    resource = check_cloud(cloud).delegated_resource
    return [resource + MICROSOFT_USE_SCOPES[u] for u in uses] + [
        "offline_access",
        "openid",
        "email",
    ]


def microsoft_app_scopes(cloud: str) -> list[str]:
    """App-only (client credentials) scope: Exchange Online's `.default`."""
    return [check_cloud(cloud).app_resource + ".default"]


def google_endpoints(authority: str | None) -> Endpoints:
    if authority:
        base = authority.rstrip("/")
        return Endpoints(
            authorization_endpoint=f"{base}/o/oauth2/v2/auth",
            token_endpoint=f"{base}/token",
            device_authorization_endpoint=f"{base}/device/code",
            revocation_endpoint=f"{base}/revoke",
            userinfo_endpoint=f"{base}/v1/userinfo",
            jwks_uri=f"{base}/oauth2/v3/certs",
            issuer=base,
        )
    return Endpoints(
        authorization_endpoint=GOOGLE_AUTHORIZATION,
        token_endpoint=GOOGLE_TOKEN,
        device_authorization_endpoint=GOOGLE_DEVICE,
        revocation_endpoint=GOOGLE_REVOKE,
        userinfo_endpoint=GOOGLE_USERINFO,
        jwks_uri=GOOGLE_JWKS,
        issuer=GOOGLE_ISSUER,
    )


# Without access_type=offline Google returns no refresh token; it returns one only on the
# first consent unless prompt=consent asks again.
GOOGLE_AUTH_PARAMS = {"access_type": "offline", "prompt": "consent"}
GOOGLE_SCOPES = [GOOGLE_MAIL_SCOPE, "openid", "email"]


def generic_token_auth(methods_supported: list[str]) -> str:
    """RFC 6749 makes client_secret_basic mandatory for servers; prefer it when offered."""
    for method in TOKEN_AUTH_METHODS:
        if method in methods_supported:
            return method
    return "client_secret_basic"


def generic_scopes(scopes_supported: list[str]) -> list[str]:
    wanted = ["openid", "email", "offline_access"]
    if scopes_supported:
        wanted = [s for s in wanted if s in scopes_supported]
    return wanted


def app_scopes_from(scopes: list[str]) -> list[str]:
    """Client-credentials scopes for a generic provider: the configured ones minus OIDC's."""
    return [s for s in scopes if s not in OIDC_SCOPES]


def endpoints_from_discovery(document: dict[str, Any], url: str) -> Endpoints:
    """Read an OpenID Connect / RFC 8414 discovery document."""
    token_endpoint = document.get("token_endpoint")
    if not isinstance(token_endpoint, str):
        raise BadInput(
            f"The discovery document at {url} has no token_endpoint: check that the URL is the "
            "provider's .well-known/openid-configuration or oauth-authorization-server document."
        )

    def text(key: str) -> str | None:
        value = document.get(key)
        return value if isinstance(value, str) else None

    def strings(key: str) -> list[str]:
        value = document.get(key)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    endpoints = Endpoints(
        token_endpoint=token_endpoint,
        authorization_endpoint=text("authorization_endpoint"),
        device_authorization_endpoint=text("device_authorization_endpoint"),
        revocation_endpoint=text("revocation_endpoint"),
        userinfo_endpoint=text("userinfo_endpoint"),
        jwks_uri=text("jwks_uri"),
        issuer=text("issuer"),
        token_auth_methods=strings("token_endpoint_auth_methods_supported"),
        scopes_supported=strings("scopes_supported"),
    )
    check_endpoints(endpoints)
    return endpoints


def check_endpoints(endpoints: Endpoints) -> None:
    """Every provider endpoint must be https:// (http:// only on loopback)."""
    for name in (
        "token_endpoint",
        "authorization_endpoint",
        "device_authorization_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ):
        value = getattr(endpoints, name)
        if value:
            require_https_endpoint(value, name.replace("_", " "))


async def discover(url: str, http: HttpFactory) -> Endpoints:
    """Fetch and read a discovery document; BadInput with the reason when that fails."""
    require_https_endpoint(url, "discovery URL")
    try:
        async with http() as client:
            response = await client.get(url, headers={"Accept": "application/json"})
    except httpx2.HTTPError as exc:
        raise BadInput(
            f"The discovery document at {url} could not be read ({describe_http_error(exc)}): "
            "check the URL and that this host can reach it (HTTPS_PROXY is honoured)."
        ) from None
    if response.status_code != 200:
        raise BadInput(
            f"The discovery URL {url} answered HTTP {response.status_code}: give the provider's "
            ".well-known/openid-configuration (or oauth-authorization-server) URL."
        )
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise BadInput(
            f"The discovery URL {url} did not return a JSON document: give the provider's "
            ".well-known/openid-configuration (or oauth-authorization-server) URL."
        )
    return endpoints_from_discovery(document, url)


def describe_http_error(exc: httpx2.HTTPError) -> str:
    """A short, secret-free description of a transport error."""
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx2.ConnectError):
        reason = str(exc) or "connection refused"
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            return "its TLS certificate is not trusted"
        return f"cannot connect: {reason}"
    return type(exc).__name__
