"""Scope strings: splitting them, and which resource (API) a Microsoft scope belongs to."""

from __future__ import annotations

from collections.abc import Iterable

# OpenID Connect scopes name no resource; Microsoft lets them ride along with any one resource.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})

# Microsoft: a scope without a resource prefix ("User.Read") is for Microsoft Graph.
GRAPH = "https://graph.microsoft.com"

# Exchange Online answers to both host names: delegated mail scopes are documented under
# outlook.office.com, the app-only scope under outlook.office365.com.
_RESOURCE_ALIASES = {"https://outlook.office365.com": "https://outlook.office.com"}


def split_scope(scope: str | None) -> tuple[str, ...]:
    """The scopes in a space-separated `scope` parameter (RFC 6749 §3.3), in order, deduplicated."""
    seen: dict[str, None] = {}
    for item in (scope or "").split():
        seen.setdefault(item, None)
    return tuple(seen)


def join_scope(scopes: Iterable[str]) -> str:
    """A `scope` parameter value."""
    return " ".join(scopes)


def microsoft_resource(scope: str) -> str | None:
    """The resource a Microsoft scope is for: `https://outlook.office.com/SMTP.Send` → the host."""
    if scope.lower() in OIDC_SCOPES:
        return None
    if "/" not in scope:
        return GRAPH
    resource = scope.rsplit("/", 1)[0].rstrip("/").lower()
    return _RESOURCE_ALIASES.get(resource, resource)


def microsoft_key(scope: str) -> str:
    """A comparison key: Microsoft scopes are case-insensitive and resource aliases are equal."""
    resource = microsoft_resource(scope)
    if resource is None:
        return scope.lower()
    return f"{resource}/{scope.rsplit('/', 1)[-1].lower()}"


def microsoft_resources(scopes: Iterable[str]) -> set[str]:
    """The distinct resources the scopes name (OIDC scopes name none)."""
    return {resource for scope in scopes if (resource := microsoft_resource(scope)) is not None}


def resource_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes without the OpenID Connect ones."""
    return tuple(scope for scope in scopes if scope.lower() not in OIDC_SCOPES)
