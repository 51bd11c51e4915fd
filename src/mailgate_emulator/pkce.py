"""RFC 7636 (PKCE): does a code_verifier match the code_challenge sent with the authorization?"""

from __future__ import annotations

import base64
import hashlib
import hmac

CHALLENGE_METHODS = ("S256", "plain")


def s256_challenge(code_verifier: str) -> str:
    """The S256 challenge for a verifier (RFC 7636 §4.2)."""
    # code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(code_verifier: str, code_challenge: str, method: str) -> bool:
    """Whether `code_verifier` answers `code_challenge` under `method` (RFC 7636 §4.6)."""
    try:
        expected = s256_challenge(code_verifier) if method == "S256" else code_verifier
    except UnicodeEncodeError:
        return False  # §4.1: the verifier is ASCII unreserved characters only
    return hmac.compare_digest(expected, code_challenge)
