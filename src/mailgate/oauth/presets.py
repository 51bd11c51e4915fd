"""What a new integration will get from its provider's preset, before it is saved: the endpoints
and scopes `add_integration` derives from the provider, tenant, cloud, account type, uses and
login host. The admin's form shows them pre-filled, so what they see is what is stored.

Pure: the presets of `mailgate.providers`, no discovery (a custom provider's document is read
when the integration is saved).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailgate.errors import BadInput
from mailgate.providers import (
    GOOGLE_SCOPES,
    check_cloud,
    check_provider,
    check_tenant,
    check_uses,
    default_tenant,
    generic_scopes,
    google_endpoints,
    microsoft_endpoints,
    microsoft_scopes,
)

DEFAULT_USES = ("imap", "smtp")  # what `add_integration` takes when no use is given
ACCOUNT_TYPES = ("work", "personal")


@dataclass(frozen=True)
class Preset:
    """A provider's pre-filled settings for the admin's choices. `None` where the provider has
    no such setting (a tenant for Google) or the admin types it (a custom provider's endpoints).
    """

    provider: str
    tenant: str | None = None
    cloud: str | None = None
    account_type: str | None = None
    uses: list[str] = field(default_factory=list)
    authority: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    scopes: list[str] = field(default_factory=list)
    token_auth: str | None = None


def preset(
    provider: str,
    *,
    tenant: str | None = None,
    cloud: str | None = None,
    account_type: str | None = None,
    uses: list[str] | None = None,
    authority: str | None = None,
) -> Preset:
    """The preset for these choices; `BadInput` names a choice that cannot be (an unknown cloud,
    a tenant that is no tenant)."""
    check_provider(provider)
    authority = (authority or "").strip().rstrip("/") or None
    if provider == "microsoft":
        if account_type is not None and account_type not in ACCOUNT_TYPES:
            raise BadInput(f"Unknown account type {account_type!r}: use work or personal.")
        tenant = check_tenant((tenant or "").strip() or default_tenant(account_type))
        cloud = cloud or "global"
        check_cloud(cloud)
        chosen = check_uses(list(DEFAULT_USES) if uses is None else uses)
        endpoints = microsoft_endpoints(tenant, cloud, authority)
        return Preset(
            provider,
            tenant=tenant,
            cloud=cloud,
            account_type=account_type,
            uses=chosen,
            authority=authority,
            authorization_endpoint=endpoints.authorization_endpoint,
            token_endpoint=endpoints.token_endpoint,
            device_authorization_endpoint=endpoints.device_authorization_endpoint,
            scopes=microsoft_scopes(cloud, chosen),
            token_auth="client_secret_post",
        )
    if provider == "google":
        endpoints = google_endpoints(authority)
        return Preset(
            provider,
            authority=authority,
            authorization_endpoint=endpoints.authorization_endpoint,
            token_endpoint=endpoints.token_endpoint,
            device_authorization_endpoint=endpoints.device_authorization_endpoint,
            scopes=list(GOOGLE_SCOPES),
            token_auth="client_secret_post",
        )
    return Preset(provider, scopes=generic_scopes([]))
