"""OpenID Connect discovery documents and signing keys, pointing back at the emulator.

Field sets follow the providers' live documents (login.microsoftonline.com/{tenant}/v2.0/
.well-known/openid-configuration and accounts.google.com/.well-known/openid-configuration); every
URL is rebuilt on the emulator's base URL (`urls.emulator_base`), so clients discover the emulator.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgate_emulator.errors import MicrosoftError
from mailgate_emulator.responses import json_response, microsoft_error_body
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.tenants import CONSUMERS_TENANT_ID, resolve_tenant
from mailgate_emulator.urls import emulator_base


def microsoft_configuration(base: str, segment: str, tenant_id: str | None) -> dict[str, Any]:
    """The v2.0 discovery document for `/{segment}`; `tenant_id` None for common/organizations."""
    root = f"{base}/{segment}"
    # For "common" and "organizations" the issuer is a template: the literal "{tenantid}" stands
    # for the `tid` of whoever signs in. "consumers" is the personal-accounts directory.
    if tenant_id is None and segment.lower() == "consumers":
        tenant_id = CONSUMERS_TENANT_ID
    issuer_tenant = tenant_id or "{tenantid}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def google_configuration(base: str) -> dict[str, Any]:
    """Google's discovery document, rebased on the emulator."""
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
        "device_authorization_endpoint": f"{base}/device/code",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/v1/userinfo",
        "revocation_endpoint": f"{base}/revoke",
        "jwks_uri": f"{base}/oauth2/v3/certs",
        "response_types_supported": [
            "code",
            "token",
            "id_token",
            "code token",
            "code id_token",
            "token id_token",
            "code token id_token",
            "none",
        ],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": [
            "aud",
            "email",
            "email_verified",
            "exp",
            "family_name",
            "given_name",
            "iat",
            "iss",
            "name",
            "picture",
            "sub",
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    }


def routes(state: EmulatorState) -> list[BaseRoute]:
    """Discovery and JWKS routes for both providers."""

    async def microsoft_document(request: Request) -> Response:
        segment = request.path_params["tenant"]
        try:
            tenant = resolve_tenant(state, segment)
        except MicrosoftError as err:
            body = microsoft_error_body(err, state.now())
            # The discovery endpoint names the error `invalid_tenant` (Azure/azure-cli#22145).
            body["error"] = "invalid_tenant"
            return json_response(body, 400)
        return json_response(
            microsoft_configuration(
                emulator_base(request), segment, tenant.tenant_id if tenant else None
            )
        )

    async def keys(request: Request) -> Response:
        return json_response(state.signing_keys.jwks())

    async def google_document(request: Request) -> Response:
        return json_response(google_configuration(emulator_base(request)))

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", microsoft_document),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/.well-known/openid-configuration", google_document),
        Route("/oauth2/v3/certs", keys),
    ]
