"""SASL for OAuth 2.0 bearer tokens: XOAUTH2 and OAUTHBEARER (RFC 7628). Pure: no I/O.

XOAUTH2 (Google's and Microsoft's): "user=" user ^A "auth=Bearer " token ^A ^A.
OAUTHBEARER (RFC 7628 §3.1): a GS2 header "n,a=" saslname "," then ^A-separated key=value pairs
(host, port, auth) and a final ^A ^A.

On failure both send a challenge carrying base64 JSON (`{"status": "401", "schemes": "bearer",
"scope": "…"}` or `{"status": "invalid_token"}`), which the client must answer — XOAUTH2 with an
empty response, OAUTHBEARER with a single ^A (RFC 7628 §3.2.3) — before the server sends the final
NO / -ERR / 535.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from mailgate.mail.errors import MailError

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (OAUTHBEARER, XOAUTH2)
_SEP = "\x01"


class NoOAuthMechanism(MailError):
    """The server offers neither OAUTHBEARER nor XOAUTH2."""


def xoauth2(user: str, token: str) -> bytes:
    """The XOAUTH2 initial client response, before base64."""
    return f"user={user}{_SEP}auth=Bearer {token}{_SEP}{_SEP}".encode()


def _saslname(user: str) -> str:
    # RFC 5801 §4: "=" and "," in the authorization identity are escaped as =3D and =2C.
    return user.replace("=", "=3D").replace(",", "=2C")


def oauthbearer(user: str, token: str, host: str, port: int) -> bytes:
    """The OAUTHBEARER initial client response (RFC 7628 §3.1), before base64."""
    return (
        f"n,a={_saslname(user)},{_SEP}host={host}{_SEP}port={port}{_SEP}"
        f"auth=Bearer {token}{_SEP}{_SEP}"
    ).encode()


def initial_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    if mechanism == XOAUTH2:
        return xoauth2(user, token)
    if mechanism == OAUTHBEARER:
        return oauthbearer(user, token, host, port)
    raise ValueError(f"not an OAuth 2.0 SASL mechanism: {mechanism}")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def error_reply(mechanism: str) -> bytes:
    """What the client sends after the server's error challenge, before the final failure."""
    # RFC 7628 §3.2.3: "the client MUST send a SASL message containing only %x01"; Google and
    # Microsoft document an empty response for XOAUTH2.
    return _SEP.encode() if mechanism == OAUTHBEARER else b""


@dataclass(frozen=True)
class ErrorChallenge:
    """The server's reason for refusing a token, from its error challenge."""

    status: str | None
    schemes: str | None
    scope: str | None
    raw: str

    @property
    def summary(self) -> str:
        parts = [
            f"status {self.status}" if self.status else "",
            f"scope {self.scope}" if self.scope else "",
        ]
        return ", ".join(p for p in parts if p) or "no details"


def parse_error_challenge(payload: str | bytes) -> ErrorChallenge | None:
    """Decode a server challenge (base64 JSON); None when it is not one."""
    text = payload.decode("ascii", "replace") if isinstance(payload, bytes) else payload
    text = text.strip()
    if not text:
        return None
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
        data = json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None

    def field(name: str) -> str | None:
        value = data.get(name)
        return str(value) if value is not None else None

    return ErrorChallenge(field("status"), field("schemes"), field("scope"), decoded)


def choose_mechanism(offered: list[str] | set[str], preferred: str | None = None) -> str:
    """The mechanism to use from what the server offers: `preferred` if offered, else
    OAUTHBEARER (the standard), else XOAUTH2."""
    available = {m.upper() for m in offered}
    if preferred and preferred.upper() in available:
        return preferred.upper()
    for mechanism in MECHANISMS:
        if mechanism in available:
            return mechanism
    raise NoOAuthMechanism(
        "The server offers neither OAUTHBEARER nor XOAUTH2 "
        f"(it offers {', '.join(sorted(available)) or 'no SASL mechanism'})."
    )
