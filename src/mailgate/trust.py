"""The TLS trust of outbound connections: the system's trust store (which honours SSL_CERT_FILE
and SSL_CERT_DIR), and mailgate's own development certificate."""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

_local_certificates: list[Path] = []


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying context per process, made when first needed: loading the trust store costs
    tens of milliseconds that most commands don't need to spend."""
    context = ssl.create_default_context()
    for path in _local_certificates:
        if path.exists():
            context.load_verify_locations(cafile=str(path))
    return context


def dev_certificate_path(home: Path) -> Path:
    """Where `serve` keeps its self-signed development certificate (`web.tls` makes it)."""
    return home / "tls" / "localhost.crt"


def trust_local_certificate(path: Path) -> None:
    """Trust mailgate's own development certificate (valid for localhost and loopback only),
    so that `serve --demo` and the commands beside it can call the emulator it mounts."""
    if tls_context.cache_info().currsize:
        if path.exists():
            tls_context().load_verify_locations(cafile=str(path))
    else:
        _local_certificates.append(path)
