"""How a client authenticated to the token endpoint: HTTP Basic, form fields, or not at all."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote_plus

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


@dataclass(frozen=True)
class ClientCredentials:
    """The client id and secret a request presented, and how."""

    client_id: str | None
    client_secret: str | None = field(repr=False)
    method: AuthMethod


def read_client_credentials(
    authorization: str | None, form: Mapping[str, str]
) -> ClientCredentials:
    """The client's credentials from the `Authorization` header or the form (RFC 6749 §2.3.1).

    A malformed `Authorization` header counts as absent, so the form decides.
    """
    basic = _parse_basic(authorization)
    if basic is not None:
        return ClientCredentials(basic[0], basic[1], "client_secret_basic")
    client_id = form.get("client_id") or None
    secret = form.get("client_secret")
    if secret is not None:
        return ClientCredentials(client_id, secret, "client_secret_post")
    return ClientCredentials(client_id, None, "none")


def _parse_basic(authorization: str | None) -> tuple[str, str] | None:
    raw = parse_basic_credentials(authorization)
    if raw is None:
        return None
    # RFC 6749 §2.3.1: "The client identifier is encoded using the application/x-www-form-urlencoded
    # encoding algorithm per Appendix B, and the encoded value is used as the username; the client
    # password is encoded using the same algorithm and used as the password."
    return unquote_plus(raw[0]), unquote_plus(raw[1])


def parse_basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """User and password of an HTTP Basic `Authorization` header (RFC 7617); None if malformed."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None
