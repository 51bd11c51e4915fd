"""Token strings that look like the providers' own, and handles that are safe to log.

Clients must treat tokens as opaque, so only the prefixes are imitated: Google access tokens start
`ya29.` and refresh tokens `1//`; Entra ID refresh tokens start `0.A`.
"""

from __future__ import annotations

import hashlib
import secrets

from mailgate_emulator.model import Provider

_ACCESS_PREFIX: dict[Provider, str] = {"microsoft": "EwA", "google": "ya29."}
_REFRESH_PREFIX: dict[Provider, str] = {"microsoft": "0.A", "google": "1//0"}
_CODE_PREFIX: dict[Provider, str] = {"microsoft": "1.A", "google": "4/0"}


def new_access_token(provider: Provider) -> str:
    """A fresh, unguessable access token."""
    return _ACCESS_PREFIX[provider] + secrets.token_urlsafe(48)


def new_refresh_token(provider: Provider) -> str:
    """A fresh, unguessable refresh token."""
    return _REFRESH_PREFIX[provider] + secrets.token_urlsafe(64)


def new_authorization_code(provider: Provider) -> str:
    """A fresh, unguessable authorization code."""
    return _CODE_PREFIX[provider] + secrets.token_urlsafe(32)


def token_id(token: str) -> str:
    """An opaque, stable handle for a token: the same token always gives the same handle.

    The request log records this instead of the token, so a test can tell which refresh token a
    client used without the log ever holding a credential.
    """
    return "tok_" + hashlib.sha256(token.encode()).hexdigest()[:16]


# Entra ID device codes are long opaque strings; Google's start `AH-1` (older ones `4/4-`).
_DEVICE_CODE_PREFIX: dict[Provider, str] = {"microsoft": "DAQABIQEAAAD", "google": "AH-1"}
# Microsoft user codes are 8-9 letters and digits ("FRWQDE7YL"); Google's read "GQVQ-JKEC".
_MICROSOFT_USER_CODE = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_GOOGLE_USER_CODE = "BCDFGHJKLMNPQRSTVWXZ"


def new_device_code(provider: Provider) -> str:
    """A fresh, unguessable device code (RFC 8628 §3.2 `device_code`)."""
    return _DEVICE_CODE_PREFIX[provider] + secrets.token_urlsafe(48)


def new_user_code(provider: Provider) -> str:
    """A short code a person types on the verification page (RFC 8628 §6.1: easy to type)."""
    if provider == "microsoft":
        return "".join(secrets.choice(_MICROSOFT_USER_CODE) for _ in range(9))
    letters = "".join(secrets.choice(_GOOGLE_USER_CODE) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def new_opaque_id() -> str:
    """A random identifier for a sign-in flow or a browser session."""
    return secrets.token_urlsafe(24)
