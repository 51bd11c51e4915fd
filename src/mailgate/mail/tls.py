"""The TLS context for a mail server (IMAP, POP3 and SMTP alike): the system's trust store, and
the server's private CA when one is given. Verification is always on: a private CA is added,
never a switch to turn checks off."""

from __future__ import annotations

import ssl
from typing import Protocol

from mailgate.errors import NeedsAdmin


class TrustSettings(Protocol):
    """A stored server's TLS trust: the PEM file of the CA that signed its certificate, if any."""

    @property
    def ca_file(self) -> str | None: ...


class CaFileUnusable(NeedsAdmin):
    """The server's CA file cannot be read, or holds no certificate."""

    def __init__(self, ca_file: str, reason: str) -> None:
        super().__init__(
            f"The CA file {ca_file} cannot be used ({reason}): give the PEM file of the CA that "
            "signed the server's certificate (--ca-file)."
        )
        self.ca_file = ca_file
        self.reason = reason


def tls_context_for(server: TrustSettings) -> ssl.SSLContext:
    """A verifying client context; `CaFileUnusable` when the server's CA file cannot be loaded
    (it was checked when the server was added, but files move and change)."""
    context = ssl.create_default_context()
    if server.ca_file:
        try:
            context.load_verify_locations(cafile=server.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CaFileUnusable(server.ca_file, str(exc)) from None
    return context


# OpenSSL's verification results that say the certificate is fine but names another host.
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def tls_failure_kind(exc: BaseException) -> str | None:
    """What went wrong in a TLS handshake, read from the TLS error in `exc` or in what caused
    it (client libraries wrap it): "hostname" (a certificate for another name), "certificate"
    (not trusted), "handshake" (anything else); None when no TLS error is there."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return "hostname" if current.verify_code in _NAME_MISMATCH else "certificate"
        if isinstance(current, ssl.SSLError):
            return "handshake"
        current = current.__cause__ or current.__context__
    return None
