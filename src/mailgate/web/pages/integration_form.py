"""The add and edit forms of an integration: what they show, and what a submitted form asks the
service functions (`add_integration`, `set_integration`) to do.

Two rules of reading a form:
- The scope list is the preset's until the admin edits it. The form carries the list it showed
  (`preset_scopes`); a list sent back unchanged lets the service derive the scopes from the uses
  ticked, so ticking SMTP without JavaScript still adds its scope.
- An edit passes only what differs from the stored integration, so the audit log names what
  changed and an empty secret field keeps the stored secret.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mailgate.errors import BadInput
from mailgate.oauth.integrations import IntegrationOptions
from mailgate.oauth.presets import Preset

ENDPOINTS = ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint")
PROVIDERS = ("microsoft", "google", "generic")


def scope_lines(scopes: list[str]) -> str:
    return "\n".join(scopes)


def scope_list(text: str) -> list[str]:
    return text.split()


def preset_form(name: str, chosen: Preset) -> dict[str, Any]:
    """A new integration's form, filled from its provider's preset."""
    scopes = scope_lines(chosen.scopes)
    return {
        "name": name,
        "client_id": "",
        "client_secret_expires": "",
        "tenant": chosen.tenant or "",
        "cloud": chosen.cloud or "global",
        "account_type": chosen.account_type or "",
        "uses": chosen.uses,
        "authority": chosen.authority or "",
        "discovery_url": "",
        **{key: getattr(chosen, key) or "" for key in ENDPOINTS},
        "token_auth": "",
        "scopes": scopes,
        "preset_scopes": scopes,
    }


def stored_form(view: dict[str, Any]) -> dict[str, Any]:
    """An integration's edit form, from `integration_view`."""
    scopes = scope_lines(view["scopes"])
    return {
        "name": view["name"],
        "client_id": view["client_id"],
        "client_secret_set": view["client_secret_set"],
        "client_secret_expires": view["client_secret_expires"] or "",
        "tenant": view["tenant"] or "",
        "cloud": view["cloud"] or "global",
        "account_type": view["account_type"] or "",
        "uses": view["uses"],
        "authority": view["authority"] or "",
        "discovery_url": view["discovery_url"] or "",
        **{key: view[key] or "" for key in ENDPOINTS},
        "token_auth": view["token_auth"] or "",
        "scopes": scopes,
        "preset_scopes": scopes,
    }


def typed_form(form: dict[str, str], uses: list[str], stored: dict[str, Any]) -> dict[str, Any]:
    """The form again after an error: what was typed over `stored` — never the secret."""
    typed = {
        key: value
        for key, value in form.items()
        if key in stored and key not in ("uses", "client_secret")
    }
    return {**stored, **typed, "uses": uses}


def _expiry(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(
            f"Client secret expires {text!r} is not a date: give it as YYYY-MM-DD, as the "
            "provider's console shows it."
        ) from None


def _scopes(form: dict[str, str]) -> list[str] | None:
    """The scope list when the admin edited it; None to let the preset decide."""
    typed = scope_list(form.get("scopes", ""))
    if not typed or typed == scope_list(form.get("preset_scopes", "")):
        return None
    return typed


def new_options(form: dict[str, str], uses: list[str]) -> IntegrationOptions:
    """What a submitted add form asks for: the fields given, the rest left to the preset."""
    provider = form.get("provider", "")
    options = IntegrationOptions(
        provider=provider,
        client_id=form.get("client_id", "").strip(),
        client_secret=form.get("client_secret") or None,
        client_secret_expires=_expiry(form.get("client_secret_expires", "")),
        scopes=_scopes(form),
    )
    if provider == "microsoft":
        options.uses = uses
        for key in ("tenant", "cloud", "account_type"):
            setattr(options, key, form.get(key, "").strip() or None)
    if provider in ("microsoft", "google"):
        options.authority = form.get("authority", "").strip() or None
    if provider == "generic":
        options.discovery_url = form.get("discovery_url", "").strip() or None
        options.token_auth = form.get("token_auth", "").strip() or None
        for key in ENDPOINTS:
            setattr(options, key, form.get(key, "").strip() or None)
    return options


def changed_options(
    form: dict[str, str], uses: list[str], view: dict[str, Any]
) -> IntegrationOptions:
    """What a submitted edit form changes: only the fields that differ from `view` (the stored
    integration); an empty secret field keeps the secret."""
    stored = stored_form(view)
    options = IntegrationOptions(client_secret=form.get("client_secret") or None)
    client_id = form.get("client_id", "").strip()
    if client_id and client_id != stored["client_id"]:
        options.client_id = client_id
    expires = form.get("client_secret_expires", "").strip()
    if expires and expires != stored["client_secret_expires"]:
        options.client_secret_expires = _expiry(expires)
    provider = view["provider"]
    editable = {
        "microsoft": ("tenant", "cloud", "account_type", "authority"),
        "google": ("authority",),
        "generic": ("discovery_url", "token_auth", *ENDPOINTS),
    }[provider]
    for key in editable:
        value = form.get(key, "").strip()
        # An emptied login host or endpoint is cleared; an emptied choice keeps what is stored.
        clearable = key == "authority" or key in ENDPOINTS
        if value != stored[key] and (value or clearable):
            setattr(options, key, value)
    if provider == "microsoft" and sorted(uses) != sorted(stored["uses"]):
        options.uses = uses
    options.scopes = _scopes(form)
    return options
