"""The TLS context for a mail server (IMAP, POP3 and SMTP alike): the system's trust store, and
the server's private CA when one is given. Verification is always on: a private CA is added,
never a switch to turn checks off."""

from __future__ import annotations

import os
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


# CA file (None: the system's store alone) → (the file's identity when loaded, its context).
_shared: dict[str | None, tuple[tuple[int, ...] | None, ssl.SSLContext]] = {}


def shared_tls_context(server: TrustSettings) -> ssl.SSLContext:
    """`tls_context_for`, made once and shared by every connection that trusts the same CA
    file: a context holds the whole system trust store (about 0.8 MB in memory, and ~10 ms
    of CPU to load), so a thousand mailboxes must not each load their own.
    A CA file that changed (or moved) since is loaded again; one that went is `CaFileUnusable`."""
    identity: tuple[int, ...] | None = None
    if server.ca_file:
        try:
            stat = os.stat(server.ca_file)
        except OSError as exc:
            raise CaFileUnusable(server.ca_file, exc.strerror or str(exc)) from None
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    known = _shared.get(server.ca_file)
    if known is not None and known[0] == identity:
        return known[1]
    context = tls_context_for(server)
    _shared[server.ca_file] = (identity, context)
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
